//! Reading PEM certificates from a file, with errors that name the file and what is wrong
//! with it (never its content).

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};

/// Why a PEM certificate file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The file cannot be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not PEM (a section is malformed, or its base64 is broken).
    #[error("{} is not a valid PEM file: {source}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the PEM reader found.
        #[source]
        source: pem::Error,
    },
    /// The file holds no `-----BEGIN CERTIFICATE-----` section.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Every `CERTIFICATE` section of the PEM file at `path`, in order; other sections (keys,
/// parameters) are skipped. At least one certificate, or an error.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = std::fs::read(path).map_err(|source| PemError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PemError::Malformed {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(PemError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = load_certificates(Path::new("/nonexistent/ward-ca.pem")).unwrap_err();
        assert!(matches!(err, PemError::Unreadable { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent/ward-ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let file = write("just some text\n");
        let err = load_certificates(file.path()).unwrap_err();
        assert!(matches!(err, PemError::Empty { .. }), "{err:?}");
    }

    #[test]
    fn broken_base64_is_refused() {
        let file = write("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        let err = load_certificates(file.path()).unwrap_err();
        assert!(matches!(err, PemError::Malformed { .. }), "{err:?}");
    }
}
