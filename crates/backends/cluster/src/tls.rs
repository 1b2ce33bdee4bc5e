//! Optional TLS (rustls, through tonic): a server's certificate and key
//! (`--tls-cert` / `--tls-key`), and the roots a client trusts for
//! `https://` addresses (`--tls-ca`, `MARS_TLS_CA`, else the public web roots).
//!
//! A cluster with one self-signed certificate works with no more flags: a
//! supervisor or worker given a certificate also trusts it when it connects
//! to its peers, and clients point `MARS_TLS_CA` at the same file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// What a client trusts when it connects to an `https://` address.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// PEM certificates to trust; `None`: the public web roots.
    ca: Option<Arc<[u8]>>,
}

fn read_pem(path: &Path, what: &str, marker: &str) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read the TLS {what} {}: {e}", path.display()))?;
    if !String::from_utf8_lossy(&pem).contains(marker) {
        return Err(format!("the TLS {what} {} is not PEM (no \"{marker}\" line)", path.display()));
    }
    Ok(pem)
}

impl ClientTls {
    /// Trust the certificates in this PEM file.
    pub fn from_file(path: &Path) -> Result<ClientTls, String> {
        let pem = read_pem(path, "CA certificate", "BEGIN CERTIFICATE")?;
        Ok(ClientTls { ca: Some(pem.into()) })
    }

    /// `given`, else `MARS_TLS_CA`, else `fallback` (a process's own
    /// certificate), else the public web roots.
    pub fn resolve(given: Option<&Path>, fallback: Option<&Path>) -> Result<ClientTls, String> {
        let env = std::env::var_os("MARS_TLS_CA").filter(|v| !v.is_empty()).map(PathBuf::from);
        match given.map(Path::to_path_buf).or(env).or_else(|| fallback.map(Path::to_path_buf)) {
            Some(p) => ClientTls::from_file(&p),
            None => Ok(ClientTls::default()),
        }
    }

    pub(crate) fn config(&self) -> ClientTlsConfig {
        match &self.ca {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        }
    }
}

/// A server's certificate chain and private key.
#[derive(Clone)]
pub struct ServerTls {
    cert: PathBuf,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("cert", &self.cert).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Read `--tls-cert` and `--tls-key` (both PEM).
    pub fn from_files(cert: &Path, key: &Path) -> Result<ServerTls, String> {
        Ok(ServerTls {
            cert: cert.to_path_buf(),
            cert_pem: read_pem(cert, "certificate", "BEGIN CERTIFICATE")?,
            key_pem: read_pem(key, "key", "PRIVATE KEY")?,
        })
    }

    /// Both or neither of `--tls-cert` / `--tls-key`.
    pub fn from_options(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<ServerTls>, String> {
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(c), Some(k)) => ServerTls::from_files(c, k).map(Some),
            (Some(_), None) => Err("--tls-cert needs --tls-key (the certificate's private key)".into()),
            (None, Some(_)) => Err("--tls-key needs --tls-cert".into()),
        }
    }

    /// The certificate file (trusted by this process's own connections
    /// when no CA is given).
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    pub(crate) fn config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
    }

    /// A server builder serving TLS with this identity (errors name the files).
    pub(crate) fn apply(
        tls: Option<&ServerTls>,
        builder: tonic::transport::Server,
    ) -> Result<tonic::transport::Server, String> {
        match tls {
            None => Ok(builder),
            Some(t) => builder.tls_config(t.config()).map_err(|e| {
                format!("the TLS certificate {} and its key do not make a server identity: {e}", t.cert.display())
            }),
        }
    }
}
