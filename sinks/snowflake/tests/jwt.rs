//! JWT claims and the public key fingerprint, checked against openssl's computation.

use flowctl_snowflake::jwt::{claims, jwt_account, JwtSource, KeyPair};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use pkcs8::DecodePrivateKey;
use rsa::pkcs1::EncodeRsaPublicKey;

const KEY: &str = include_str!("fixtures/test_key.p8");
const KEY_ENC: &str = include_str!("fixtures/test_key_encrypted.p8");
const FP: &str = include_str!("fixtures/test_key.fingerprint");

#[test]
fn fingerprint_matches_openssl() {
    let kp = KeyPair::from_pem(KEY, None, "test").unwrap();
    assert_eq!(kp.fingerprint, format!("SHA256:{}", FP.trim()));
}

#[test]
fn encrypted_key_needs_the_right_passphrase() {
    let kp = KeyPair::from_pem(KEY_ENC, Some("flowctl-test"), "enc").unwrap();
    assert_eq!(kp.fingerprint, format!("SHA256:{}", FP.trim()));
    let missing = KeyPair::from_pem(KEY_ENC, None, "enc.p8")
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("enc.p8") && missing.contains("passphrase"),
        "{missing}"
    );
    let wrong = KeyPair::from_pem(KEY_ENC, Some("nope"), "enc.p8")
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("wrong passphrase"), "{wrong}");
}

#[test]
fn garbage_is_a_clear_error() {
    let e = KeyPair::from_pem("hello", None, "k.p8")
        .unwrap_err()
        .to_string();
    assert!(e.contains("k.p8") && e.contains("BEGIN PRIVATE KEY"), "{e}");
}

#[test]
fn account_drops_region_and_is_uppercased() {
    assert_eq!(jwt_account("xy12345.us-east-1"), "XY12345");
    assert_eq!(jwt_account("myorg-myaccount"), "MYORG-MYACCOUNT");
    let c = claims("xy12345.eu-west-1.aws", "svc_flowctl", "SHA256:abc=", 1000);
    assert_eq!(c.sub, "XY12345.SVC_FLOWCTL");
    assert_eq!(c.iss, "XY12345.SVC_FLOWCTL.SHA256:abc=");
    assert_eq!(c.iat, 1000);
    assert!(c.exp > c.iat && c.exp - c.iat <= 3600);
}

#[test]
fn token_is_rs256_signed_by_the_key_and_cached() {
    let kp = KeyPair::from_pem(KEY, None, "test").unwrap();
    let src = JwtSource::new(kp, "acct.us-east-1", "me");
    let token = src.token().unwrap();
    assert_eq!(token, src.token().unwrap(), "a fresh token is reused");
    let public = rsa::RsaPrivateKey::from_pkcs8_pem(KEY)
        .unwrap()
        .to_public_key()
        .to_pkcs1_der()
        .unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data = decode::<flowctl_snowflake::jwt::Claims>(
        &token,
        &DecodingKey::from_rsa_der(public.as_bytes()),
        &v,
    )
    .unwrap();
    assert_eq!(data.claims.sub, "ACCT.ME");
    assert_eq!(data.claims.iss, format!("ACCT.ME.SHA256:{}", FP.trim()));
    assert!(data.claims.exp - data.claims.iat <= 3600);
    assert!(!format!("{src:?}").contains(&token));
}
