//! HTTPS: with `tls_cert` and `tls_key` set, connections are TLS (rustls); without, plain
//! HTTP for loopback or a reverse proxy in front.
//!
//! The crypto provider is named (ring) rather than taken from the process default: the
//! dependency tree enables more than one, and rustls then refuses to guess.

use crate::config::HttpConfig;
use crate::exit::{self, ExitError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// The TLS acceptor of the config, or `None` for plain HTTP. Errors exit 78 and name the file.
pub fn acceptor(cfg: &HttpConfig) -> Result<Option<TlsAcceptor>, ExitError> {
    let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) else {
        return Ok(None);
    };
    let fail = |what: String| ExitError::new(exit::CONFIG, what);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| fail(format!("http.tls_cert {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(fail(format!(
            "http.tls_cert {}: no PEM certificate in it",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| fail(format!("http.tls_key {}: {e}", key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| fail(format!("TLS: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        fail(format!(
            "http.tls_cert and http.tls_key do not go together: {e}"
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}
