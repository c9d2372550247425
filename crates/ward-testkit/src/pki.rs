//! A private certificate authority for TLS tests: a CA certificate that no system store
//! trusts, and server certificates it signs (for `127.0.0.1`, `localhost`, …).

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// The IdP's TLS identity: PEM files for node, and the CA certificate (PEM) the harness's own
/// client trusts for the test hooks.
#[derive(Clone, Debug)]
pub struct IdpTls {
    /// The server certificate chain (`TLS_CERT`).
    pub cert_file: PathBuf,
    /// Its private key (`TLS_KEY`).
    pub key_file: PathBuf,
    /// The CA that issued it.
    pub ca_pem: Vec<u8>,
}

/// A CA made for one test run; its key lives only in memory.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key, as PEM files in a directory.
#[derive(Clone, Debug)]
pub struct ServerFiles {
    /// The certificate (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key_file: PathBuf,
}

impl TestCa {
    /// A new CA named `name` (its subject's common name).
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)
            .context("self-signing the test CA")?;
        Ok(Self { issuer })
    }

    /// The CA certificate (PEM): what a client must trust.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `dir/<stem>-ca.pem` and returns the path.
    pub fn write_cert(&self, dir: &Path, stem: &str) -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("{stem}-ca.pem"));
        std::fs::write(&path, self.cert_pem()).context("writing the CA certificate")?;
        Ok(path)
    }

    /// A server certificate for `names` (IP addresses become IP SANs), signed by this CA,
    /// written to `dir/<stem>.pem` and `dir/<stem>-key.pem`.
    pub fn write_server(
        &self,
        dir: &Path,
        stem: &str,
        names: &[&str],
    ) -> anyhow::Result<ServerFiles> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, stem);
        let key = KeyPair::generate()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing the server certificate")?;
        let files = ServerFiles {
            cert_file: dir.join(format!("{stem}.pem")),
            key_file: dir.join(format!("{stem}-key.pem")),
        };
        std::fs::write(&files.cert_file, cert.pem()).context("writing the certificate")?;
        std::fs::write(&files.key_file, key.serialize_pem()).context("writing the key")?;
        Ok(files)
    }
}
