//! Token authentication: every gRPC and Flight call carries
//! `authorization: Bearer <token>`, compared in constant time.

use std::sync::Arc;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::{Request, Status};

/// Whether `given` equals `token`, in time that depends only on the lengths.
pub fn token_matches(token: &str, given: &str) -> bool {
    let (a, b) = (token.as_bytes(), given.as_bytes());
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The token in an `Authorization: Bearer …` header value.
pub fn bearer(header: &str) -> Option<&str> {
    header.strip_prefix("Bearer ").map(str::trim)
}

/// A fresh random token (32 bytes, hex).
pub fn generate_token() -> std::io::Result<String> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(format!("no randomness for a token: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Server side: refuses a call without the right token.
#[derive(Clone, Debug)]
pub struct CheckToken(pub Arc<str>);

impl tonic::service::Interceptor for CheckToken {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let ok = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .is_some_and(|t| token_matches(&self.0, t));
        if ok {
            Ok(req)
        } else {
            Err(Status::unauthenticated("a valid token is required (authorization: Bearer <token>)"))
        }
    }
}

/// Client side: adds the token to every call.
#[derive(Clone, Debug)]
pub struct AddToken(MetadataValue<Ascii>);

impl AddToken {
    pub fn new(token: &str) -> Result<AddToken, String> {
        format!("Bearer {token}")
            .parse()
            .map(AddToken)
            .map_err(|_| "the token has characters a header cannot carry".to_string())
    }
}

impl tonic::service::Interceptor for AddToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("abc", "ab"));
        assert!(!token_matches("abc", "abcd"));
        assert!(!token_matches("abc", ""));
        assert_eq!(bearer("Bearer xyz"), Some("xyz"));
        assert_eq!(bearer("Basic xyz"), None);
        let t = generate_token().unwrap();
        assert_eq!(t.len(), 64);
        assert_ne!(t, generate_token().unwrap());
    }
}
