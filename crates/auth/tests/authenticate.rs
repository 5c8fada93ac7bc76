//! The authenticator against hand-built directories: API keys, foreign JWTs (static keys and
//! a JWKS served over HTTP with a rotation mid-test), the gateway's own tokens, and tenant
//! resolution. Every refusal is checked for its status and message.

use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretBox};
use serde_json::{Value, json};
use switchboard_auth::api_key::{self, HashingKey};
use switchboard_auth::{
    AuthError, AuthOptions, Authenticator, GatewayIssuer, JwksCache, JwksOptions, RequestFacts,
    SigningKeyMaterial, Snapshot, generate_signing_key,
};
use switchboard_domain::tenancy::{
    ApiKeyRecord, Directory, Identity, IssuerConfig, KeyOwner, Membership, Role, Target, Tenant,
    TenantDirectory, TenantId, TenantStatus, UserId,
};

const BASE: &str = "http://gw.test";

fn hashing() -> HashingKey {
    HashingKey::new(&SecretBox::from(vec![42u8; 32])).unwrap()
}

fn tenant_dir(id: &str) -> TenantDirectory {
    TenantDirectory {
        tenant: Tenant::new(TenantId::new(id).unwrap(), id),
        members: vec![Membership {
            user: UserId::new(format!("ada@{id}.com")).unwrap(),
            role: Role::Member,
        }],
        groups: vec![],
        roles: vec![],
        grants: vec![],
        api_keys: vec![],
        clients: vec![],
        issuers: vec![],
        revoked_tokens: vec![],
        servers: vec![],
    }
}

fn key_for(dir: &mut TenantDirectory, hashing: &HashingKey, user: &str) -> String {
    let new = api_key::generate(hashing);
    dir.api_keys.push(ApiKeyRecord {
        id: new.id.clone(),
        tenant: dir.tenant.id.clone(),
        name: "test".into(),
        owner: KeyOwner::User(UserId::new(user).unwrap()),
        hash: new.hash,
        restrictions: vec![],
        expires_at: None,
        revoked_at: None,
        created_at: 0,
        quotas: None,
        ip_allowlist: Vec::new(),
    });
    new.text.expose_secret().to_owned()
}

struct Signer {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn signer() -> Signer {
    let (kid, pkcs8, jwk) = generate_signing_key().unwrap();
    Signer {
        kid,
        pkcs8,
        jwk: serde_json::from_str(&jwk).unwrap(),
    }
}

impl Signer {
    fn sign(&self, claims: Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn authenticator(dirs: Vec<TenantDirectory>, issuer: Option<GatewayIssuer>) -> Authenticator {
    Authenticator::new(
        Snapshot::build(Directory {
            revision: 1,
            tenants: dirs,
        }),
        hashing(),
        JwksCache::new(
            http(),
            JwksOptions {
                min_refresh: std::time::Duration::from_millis(0),
                ..Default::default()
            },
        ),
        issuer,
        AuthOptions {
            base_url: BASE.into(),
            subdomain_base: Some("mcp.test".into()),
        },
    )
}

fn facts<'a>(bearer: Option<&'a str>, path_tenant: Option<&'a str>) -> RequestFacts<'a> {
    RequestFacts {
        path_tenant,
        bearer,
        resource: "http://gw.test/mcp",
        ..Default::default()
    }
}

#[tokio::test]
async fn open_mode_serves_the_default_tenant_only() {
    let auth = authenticator(vec![], None);
    let ok = auth.authenticate(&facts(None, None)).await.unwrap();
    assert_eq!(ok.principal.tenant.as_str(), "default");
    assert_eq!(ok.principal.identity, Identity::Anonymous);
    assert!(
        auth.authenticate(&facts(None, Some("default")))
            .await
            .is_ok()
    );
    let err = auth
        .authenticate(&facts(None, Some("acme")))
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), 404);
}

#[tokio::test]
async fn api_keys_authenticate_and_fail_closed() {
    let h = hashing();
    let mut acme = tenant_dir("acme");
    let key = key_for(&mut acme, &h, "ada@acme.com");
    let stranger = key_for(&mut acme, &h, "nobody@acme.com");
    let mut revoked_dir = acme.api_keys[0].clone();
    revoked_dir.id = "revokedkey23".into();
    let auth = authenticator(vec![acme.clone(), tenant_dir("globex")], None);

    let ok = auth.authenticate(&facts(Some(&key), None)).await.unwrap();
    assert_eq!(ok.principal.tenant.as_str(), "acme");
    assert_eq!(ok.principal.roles, vec![Role::Member]);
    assert!(
        auth.authenticate(&facts(Some(&key), Some("acme")))
            .await
            .is_ok()
    );

    let cases: Vec<(Option<String>, Option<&str>, u16, &str)> = vec![
        (None, None, 401, "needs a credential"),
        (Some(format!("{key}x")), None, 401, "not recognised"),
        (
            Some(key.replace("sb_", "sb_x")),
            None,
            401,
            "sb_<id>_<secret>",
        ),
        (Some(key.clone()), Some("globex"), 403, "belongs to tenant"),
        (Some(key.clone()), Some("nope"), 404, "unknown tenant"),
        (
            Some(key.clone()),
            Some("../etc"),
            400,
            "tenant id is not valid",
        ),
        (Some(stranger.clone()), None, 403, "not a member"),
    ];
    for (bearer, tenant, status, message) in cases {
        let err = auth
            .authenticate(&facts(bearer.as_deref(), tenant))
            .await
            .err()
            .unwrap_or_else(|| panic!("{bearer:?} {tenant:?} accepted"));
        assert_eq!(err.status(), status, "{err}");
        assert!(err.to_string().contains(message), "{err}");
        if let Some(b) = &bearer {
            assert!(!err.to_string().contains(b.as_str()), "secret echoed");
        }
    }
    let err = auth
        .authenticate(&facts(Some(&key), Some("globex")))
        .await
        .err()
        .unwrap();
    assert!(err.is_cross_tenant());

    // Revocation, expiry and suspension take effect with the next snapshot.
    let mut changed = acme.clone();
    changed.api_keys[0].revoked_at = Some(now());
    changed.api_keys[1].expires_at = Some(now() - 1);
    changed.members.push(Membership {
        user: UserId::new("nobody@acme.com").unwrap(),
        role: Role::Member,
    });
    auth.publish(Snapshot::build(Directory {
        revision: 2,
        tenants: vec![changed.clone()],
    }));
    let err = auth
        .authenticate(&facts(Some(&key), None))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, AuthError::RevokedKey(_)), "{err}");
    let err = auth
        .authenticate(&facts(Some(&stranger), None))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, AuthError::ExpiredKey(_)), "{err}");

    changed.api_keys[0].revoked_at = None;
    changed.tenant.status = TenantStatus::Suspended;
    auth.publish(Snapshot::build(Directory {
        revision: 3,
        tenants: vec![changed],
    }));
    let err = auth
        .authenticate(&facts(Some(&key), None))
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), 403);
    assert!(err.to_string().contains("suspended"), "{err}");
}

#[tokio::test]
async fn restricted_keys_carry_their_binding() {
    let h = hashing();
    let mut acme = tenant_dir("acme");
    let key = key_for(&mut acme, &h, "ada@acme.com");
    acme.api_keys[0].restrictions = vec![Target::parse("time").unwrap()];
    let auth = authenticator(vec![acme], None);
    let ok = auth.authenticate(&facts(Some(&key), None)).await.unwrap();
    assert_eq!(
        ok.principal.restrictions,
        vec![Target::parse("time").unwrap()]
    );
}

fn issuer_config(tenant: &str, iss: &str) -> IssuerConfig {
    IssuerConfig {
        tenant: TenantId::new(tenant).unwrap(),
        issuer: iss.into(),
        jwks_url: None,
        jwks: None,
        audiences: vec![],
        claims: Default::default(),
        required_scopes: vec![],
        default_role: None,
    }
}

fn claims(iss: &str, email: &str) -> Value {
    json!({"iss": iss, "aud": BASE, "exp": now() + 300, "email": email, "jti": "t1"})
}

#[tokio::test]
async fn foreign_jwts_are_verified_strictly() {
    let idp = signer();
    let mut acme = tenant_dir("acme");
    let mut cfg = issuer_config("acme", "https://idp.acme");
    cfg.jwks = Some(json!({"keys": [idp.jwk.clone()]}).to_string());
    cfg.required_scopes = vec![];
    acme.issuers.push(cfg);
    let auth = authenticator(vec![acme, tenant_dir("globex")], None);

    let good = idp.sign(claims("https://idp.acme", "ada@acme.com"));
    let ok = auth.authenticate(&facts(Some(&good), None)).await.unwrap();
    assert_eq!(
        ok.principal.identity,
        Identity::User(UserId::new("ada@acme.com").unwrap())
    );

    let other = signer();
    let mut expired = claims("https://idp.acme", "ada@acme.com");
    expired["exp"] = json!(now() - 600);
    let mut early = claims("https://idp.acme", "ada@acme.com");
    early["nbf"] = json!(now() + 600);
    let mut wrong_aud = claims("https://idp.acme", "ada@acme.com");
    wrong_aud["aud"] = json!("https://other.gateway");
    let mut no_exp = claims("https://idp.acme", "ada@acme.com");
    no_exp.as_object_mut().unwrap().remove("exp");
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("https://idp.acme", "ada@acme.com"),
        &EncodingKey::from_secret(idp.jwk.to_string().as_bytes()),
    )
    .unwrap();
    let unsigned = {
        let parts: Vec<&str> = good.split('.').collect();
        use base64::Engine;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        format!("{header}.{}.", parts[1])
    };
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut sig = parts[2].clone().into_bytes();
        sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
        parts[2] = String::from_utf8(sig).unwrap();
        parts.join(".")
    };
    let cases = vec![
        (idp.sign(expired), "expired"),
        (idp.sign(early), "not valid yet"),
        (idp.sign(wrong_aud), "audience"),
        (idp.sign(no_exp), "`exp`"),
        (
            other.sign(claims("https://idp.acme", "ada@acme.com")),
            "key",
        ),
        (
            idp.sign(claims("https://evil", "ada@acme.com")),
            "not trusted",
        ),
        (
            idp.sign(claims("https://idp.acme", "eve@acme.com")),
            "not a member",
        ),
        (hs, "symmetric"),
        (unsigned, "well-formed JWT"),
        (tampered, "signature"),
        ("garbage".to_string(), "well-formed JWT"),
    ];
    for (token, message) in cases {
        let err = auth
            .authenticate(&facts(Some(&token), None))
            .await
            .err()
            .unwrap_or_else(|| panic!("accepted: {message}"));
        assert!(matches!(err.status(), 401 | 403), "{err}");
        assert!(
            err.to_string().contains(message),
            "expected {message:?}: {err}"
        );
    }
    // The issuer of acme presented on globex's endpoint is a cross-tenant attempt.
    let err = auth
        .authenticate(&facts(Some(&good), Some("globex")))
        .await
        .err()
        .unwrap();
    assert!(err.is_cross_tenant(), "{err}");
}

#[tokio::test]
async fn jwks_rotation_is_picked_up_by_kid() {
    let first = signer();
    let second = signer();
    let served = Arc::new(Mutex::new(json!({"keys": [first.jwk.clone()]})));
    let fetches = Arc::new(Mutex::new(0usize));
    let app = {
        let served = served.clone();
        let fetches = fetches.clone();
        axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let served = served.clone();
                let fetches = fetches.clone();
                async move {
                    *fetches.lock().unwrap() += 1;
                    axum::Json(served.lock().unwrap().clone())
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    let mut acme = tenant_dir("acme");
    let mut cfg = issuer_config("acme", "https://idp.acme");
    cfg.jwks_url = Some(url);
    acme.issuers.push(cfg);
    let auth = authenticator(vec![acme], None);

    let t1 = first.sign(claims("https://idp.acme", "ada@acme.com"));
    assert!(auth.authenticate(&facts(Some(&t1), None)).await.is_ok());
    assert!(auth.authenticate(&facts(Some(&t1), None)).await.is_ok());
    assert_eq!(
        *fetches.lock().unwrap(),
        1,
        "keys and the verdict are cached"
    );

    // The issuer rotates: the new kid triggers a refetch.
    *served.lock().unwrap() = json!({"keys": [second.jwk.clone()]});
    let t2 = second.sign(claims("https://idp.acme", "ada@acme.com"));
    assert!(auth.authenticate(&facts(Some(&t2), None)).await.is_ok());
    assert_eq!(*fetches.lock().unwrap(), 2);
    // A new token signed with the withdrawn key is refused.
    let mut c = claims("https://idp.acme", "ada@acme.com");
    c["jti"] = json!("t3");
    let t3 = first.sign(c);
    let err = auth
        .authenticate(&facts(Some(&t3), None))
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), 401, "{err}");
}

#[tokio::test]
async fn the_gateways_own_tokens_and_their_revocation() {
    let (kid, pkcs8, _) = generate_signing_key().unwrap();
    let material = vec![SigningKeyMaterial {
        kid,
        pkcs8,
        retired: false,
    }];
    let issuer = GatewayIssuer::new(BASE.into(), &material).unwrap();
    let ada = Identity::User(UserId::new("ada@acme.com").unwrap());
    let acme_id = TenantId::new("acme").unwrap();
    let issued = issuer.issue(&acme_id, &ada, BASE, 600, "").unwrap();
    let auth = authenticator(
        vec![tenant_dir("acme"), tenant_dir("globex")],
        Some(GatewayIssuer::new(BASE.into(), &material).unwrap()),
    );
    let ok = auth
        .authenticate(&facts(Some(&issued.token), Some("acme")))
        .await
        .unwrap();
    assert_eq!(ok.principal.roles, vec![Role::Member]);
    let err = auth
        .authenticate(&facts(Some(&issued.token), Some("globex")))
        .await
        .err()
        .unwrap();
    assert!(err.is_cross_tenant());

    let mut acme = tenant_dir("acme");
    acme.revoked_tokens.push(issued.jti.clone());
    auth.publish(Snapshot::build(Directory {
        revision: 9,
        tenants: vec![acme],
    }));
    let err = auth
        .authenticate(&facts(Some(&issued.token), None))
        .await
        .err()
        .unwrap();
    assert_eq!(err, AuthError::RevokedToken);
}

#[tokio::test]
async fn tenant_names_must_agree() {
    let auth = authenticator(vec![tenant_dir("acme"), tenant_dir("globex")], None);
    let snapshot = auth.snapshot();
    let conflicting = RequestFacts {
        path_tenant: Some("acme"),
        header_tenant: Some("globex"),
        ..Default::default()
    };
    let err = auth.requested_tenant(&snapshot, &conflicting).unwrap_err();
    assert_eq!(err.status(), 400);
    let by_host = RequestFacts {
        host: Some("globex.mcp.test"),
        ..Default::default()
    };
    assert_eq!(
        auth.requested_tenant(&snapshot, &by_host)
            .unwrap()
            .unwrap()
            .as_str(),
        "globex"
    );
    let hostile = "a".repeat(10_000);
    let err = auth
        .requested_tenant(
            &snapshot,
            &RequestFacts {
                header_tenant: Some(&hostile),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().len() < 300);
}
