//! Nango webhook signatures: the `X-Nango-Hmac-Sha256` header contains the hex
//! HMAC-SHA256 of the exact request body bytes, keyed with the webhook
//! signing key of the Nango environment.

use hmac::{Hmac, KeyInit, Mac};
use lambda_http::http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-nango-hmac-sha256";

/// Length of a hex-encoded HMAC-SHA256: 32 bytes, two characters each.
const SIGNATURE_HEX_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// The reason a webhook's signature was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Nango-Hmac-Sha256 header is missing")]
    Missing,
    #[error("the X-Nango-Hmac-Sha256 header is not 64 hex characters")]
    Malformed,
    #[error("the X-Nango-Hmac-Sha256 header does not match the body")]
    Mismatch,
}

/// Computes the signature Nango sends for `body`: lowercase hex of HMAC-SHA256.
pub fn sign(key: &SecretString, body: &[u8]) -> String {
    hex::encode(mac_over(key, body).finalize().into_bytes())
}

/// Checks the `X-Nango-Hmac-Sha256` header of a request against its raw body.
///
/// The legacy `X-Nango-Signature` header (an unkeyed hash) is never read, so
/// a request that carries only that header fails with [`SignatureError::Missing`].
/// Hex digits may be in either case. Only the digest comparison runs in
/// constant time, because the header's length and hex form are not secret.
pub fn verify(key: &SecretString, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
    let header = headers
        .get(SIGNATURE_HEADER)
        .ok_or(SignatureError::Missing)?;
    let text = header.to_str().map_err(|_| SignatureError::Malformed)?;
    if text.len() != SIGNATURE_HEX_LEN {
        return Err(SignatureError::Malformed);
    }
    let expected = hex::decode(text).map_err(|_| SignatureError::Malformed)?;

    mac_over(key, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

fn mac_over(key: &SecretString, body: &[u8]) -> HmacSha256 {
    // hmac 0.13's `new_from_slice` always returns Ok, because HMAC hashes a
    // key longer than one block and pads a shorter one.
    let mut mac = HmacSha256::new_from_slice(key.expose_secret().as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::HeaderValue;

    /// Known result: HMAC-SHA256 of `payload` keyed with `secret`, as Python's
    /// `hmac.new(b"secret", b"payload", "sha256").hexdigest()` also computes it.
    const VECTOR_SIGNATURE: &str =
        "b82fcb791acec57859b989b430a826488ce2e479fdf92326bd0a2e8375a42ba4";

    fn key() -> SecretString {
        SecretString::from("secret")
    }

    fn headers_with(signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(signature).expect("a valid header value"),
        );
        headers
    }

    #[test]
    fn sign_matches_nango_vector() {
        assert_eq!(sign(&key(), b"payload"), VECTOR_SIGNATURE);
    }

    #[test]
    fn verify_accepts_vector() {
        let headers = headers_with(VECTOR_SIGNATURE);
        assert_eq!(verify(&key(), &headers, b"payload"), Ok(()));
    }

    #[test]
    fn verify_accepts_uppercase_hex() {
        let headers = headers_with(&VECTOR_SIGNATURE.to_ascii_uppercase());
        assert_eq!(verify(&key(), &headers, b"payload"), Ok(()));
    }

    #[test]
    fn verify_rejects_changed_body() {
        let headers = headers_with(VECTOR_SIGNATURE);
        assert_eq!(
            verify(&key(), &headers, b"payloaD"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verify_rejects_other_key() {
        let headers = headers_with(VECTOR_SIGNATURE);
        assert_eq!(
            verify(&SecretString::from("secreT"), &headers, b"payload"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verify_rejects_missing_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-nango-signature",
            HeaderValue::from_static(VECTOR_SIGNATURE),
        );
        assert_eq!(
            verify(&key(), &headers, b"payload"),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn verify_rejects_malformed_values() {
        let prefixed = format!("sha256={VECTOR_SIGNATURE}");
        let truncated = &VECTOR_SIGNATURE[..63];
        let extended = format!("{VECTOR_SIGNATURE}0");
        let non_hex = format!("{}g", &VECTOR_SIGNATURE[..63]);
        let padded = format!(" {}", &VECTOR_SIGNATURE[..63]);
        for value in ["", truncated, &prefixed, &extended, &non_hex, &padded] {
            assert_eq!(
                verify(&key(), &headers_with(value), b"payload"),
                Err(SignatureError::Malformed),
                "header value {value:?}"
            );
        }
    }
}
