//! JWT claims and the public key fingerprint, checked against openssl's computation.

use flowctl_snowflake::jwt::{claims, jwt_account, JwtSource, KeyPair};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use pkcs8::DecodePrivateKey;
use rsa::pkcs1::EncodeRsaPublicKey;

const KEY: &str = include_str!("../fixtures/test_key.p8");
const KEY_ENC: &str = include_str!("../fixtures/test_key_encrypted.p8");
const FP: &str = include_str!("../fixtures/test_key.fingerprint");

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

/// Each account-identifier form against the account Snowflake's connectors put in the JWT:
/// - snowflake-connector-python `src/snowflake/connector/auth/keypair.py` (`prepare`):
///   `.global` in the account → cut at the first `-`, else at the first `.`; upper case;
/// - the JDBC driver's `SessionUtilKeyPairTest` (net.snowflake.client.core):
///   `account.region-cloud` → `ACCOUNT`, `name.azure.deployment` → `NAME`, `single` → `SINGLE`;
/// - gosnowflake `extractAccountName`: cut at the first `.`, upper case.
#[test]
fn account_is_derived_as_the_connectors_derive_it() {
    for (account, want) in [
        // Organisation and account name: nothing to cut.
        ("myorg-myaccount", "MYORG-MYACCOUNT"),
        ("MyOrg-My_Account", "MYORG-MY_ACCOUNT"),
        // Legacy locators, with region and with region and cloud.
        ("xy12345", "XY12345"),
        ("xy12345.us-east-1", "XY12345"),
        ("xy12345.us-east-2.aws", "XY12345"),
        ("xy12345.west-europe.azure", "XY12345"),
        ("account.region-cloud", "ACCOUNT"),
        ("name.azure.deployment", "NAME"),
        ("multi.part.long.name", "MULTI"),
        // `.global` identifiers: the account name before the first dash.
        ("myaccount-xy12345.global", "MYACCOUNT"),
        ("testaccount-abcdefg.global", "TESTACCOUNT"),
    ] {
        assert_eq!(jwt_account(account), want, "{account}");
    }
    let c = claims("xy12345.eu-west-1.aws", "svc_flowctl", "SHA256:abc=", 1000);
    assert_eq!(c.sub, "XY12345.SVC_FLOWCTL");
    assert_eq!(c.iss, "XY12345.SVC_FLOWCTL.SHA256:abc=");
    assert_eq!(c.iat, 1000);
    assert!(c.exp > c.iat && c.exp - c.iat <= 3600);
    let g = claims("myorg-acct.global", "svc", "SHA256:abc=", 1000);
    assert_eq!(g.sub, "MYORG.SVC");
    let o = claims("myorg-myaccount", "svc", "SHA256:abc=", 1000);
    assert_eq!(o.iss, "MYORG-MYACCOUNT.SVC.SHA256:abc=");
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
