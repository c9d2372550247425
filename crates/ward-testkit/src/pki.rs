//! A private certificate authority for TLS tests: a CA certificate that no system store
//! trusts, and server certificates it signs (for `127.0.0.1`, `localhost`, …), and client
//! certificates for mutual TLS (RFC 8705).

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
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

/// A client certificate and its key, as PEM files, for Ward's `[oidc] client_cert` /
/// `client_key`.
#[derive(Clone, Debug)]
pub struct ClientFiles {
    /// The certificate (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key_file: PathBuf,
    /// RFC 8705 `x5t#S256`: base64url SHA-256 of the certificate's DER.
    pub thumbprint: String,
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

    /// Writes the CA certificate to `path` (e.g. the IdP's `MTLS_CA`).
    pub fn write_cert_to(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.cert_pem()).context("writing the CA certificate")
    }

    /// A TLS client certificate (extended key usage `clientAuth`) with the DNS SAN `san_dns`
    /// and the common name `stem`, signed by this CA, written to `dir/<stem>.pem` and
    /// `dir/<stem>-key.pem`.
    pub fn write_client(
        &self,
        dir: &Path,
        stem: &str,
        san_dns: &str,
    ) -> anyhow::Result<ClientFiles> {
        let mut params = CertificateParams::new(vec![san_dns.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, stem);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing the client certificate")?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.der());
        let files = ClientFiles {
            cert_file: dir.join(format!("{stem}.pem")),
            key_file: dir.join(format!("{stem}-key.pem")),
            thumbprint: URL_SAFE_NO_PAD.encode(digest.as_ref()),
        };
        std::fs::write(&files.cert_file, cert.pem()).context("writing the certificate")?;
        std::fs::write(&files.key_file, key.serialize_pem()).context("writing the key")?;
        Ok(files)
    }
}
