//! HTTPS with rustls (feature `rustls-tls`, on by default): the CAs a client trusts and the
//! certificate it presents. Only the CAs given are trusted (no system or webpki roots): a
//! Scarab cluster has its own CA (`scarab cert ca`).

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// What the builder was given for TLS.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsOptions {
    /// PEM texts of trusted CAs.
    pub(crate) roots: Vec<Vec<u8>>,
    /// PEM certificate chain and key of the client identity.
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
}

fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{what}: {e}"))
}

impl TlsOptions {
    pub(crate) fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.identity.is_none()
    }

    /// The rustls configuration: HTTP/1.1 (the server speaks nothing else), ring provider.
    pub(crate) fn config(&self) -> Result<rustls::ClientConfig, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for pem in &self.roots {
            let mut any = false;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| invalid("CA certificate", e))?;
                roots.add(cert).map_err(|e| invalid("CA certificate", e))?;
                any = true;
            }
            if !any {
                return Err(invalid("CA certificate", "no PEM certificate found"));
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS", e))?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid("client certificate", e))?;
                if chain.is_empty() {
                    return Err(invalid("client certificate", "no PEM certificate found"));
                }
                let key =
                    PrivateKeyDer::from_pem_slice(key).map_err(|e| invalid("client key", e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| invalid("client certificate", e))?
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}
