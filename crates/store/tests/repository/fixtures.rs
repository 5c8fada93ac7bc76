//! Test data: short constructors, and a fully populated tenant together with the directory
//! entry it must load back as.

use switchboard_domain::tenancy::{
    ApiKeyRecord, ClaimMapping, ClientId, Condition, Effect, Grant, Grantee, Group, GroupName,
    IssuerConfig, ItemKind, KeyOwner, Membership, Permission, Plan, Role, RoleDef, ServiceClient,
    Target, Tenant, TenantDirectory, TenantId, TenantStatus, UserId,
};
use switchboard_store::Store;

/// A user who belongs to every populated tenant (users are global).
pub const SHARED_USER: &str = "ada@shared.example";
/// Far in the future (2096).
pub const LATER: i64 = 4_000_000_000;

pub fn t(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

pub fn u(email: &str) -> UserId {
    UserId::new(email).unwrap()
}

pub fn g(name: &str) -> GroupName {
    GroupName::new(name).unwrap()
}

pub fn target(pattern: &str) -> Target {
    Target::parse(pattern).unwrap()
}

pub fn key(tenant: &str, id: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        tenant: t(tenant),
        name: format!("{id} of {tenant}"),
        owner: KeyOwner::User(u(SHARED_USER)),
        hash: vec![0, 1, 2, 250, 255],
        restrictions: vec![target("time/now"), target("git*/*")],
        expires_at: Some(LATER),
        revoked_at: None,
        created_at: 100,
        quotas: Some(switchboard_domain::tenancy::Quotas {
            calls_per_day: Some(1000),
            calls_per_month: None,
        }),
        ip_allowlist: vec!["10.0.0.0/8".into(), "192.0.2.7".into()],
    }
}

pub fn client(tenant: &str, id: &str) -> ServiceClient {
    ServiceClient {
        id: ClientId::new(id).unwrap(),
        tenant: t(tenant),
        name: format!("{id} of {tenant}"),
        role: Role::Admin,
        secret_hash: vec![9; 32],
        disabled: false,
    }
}

pub fn issuer(tenant: &str) -> IssuerConfig {
    IssuerConfig {
        tenant: t(tenant),
        issuer: format!("https://idp.{tenant}.example"),
        jwks_url: Some(format!("https://idp.{tenant}.example/jwks")),
        jwks: None,
        audiences: vec!["https://gw.example".into()],
        claims: ClaimMapping {
            groups: Some("groups".into()),
            tenant: Some("org".into()),
            ..Default::default()
        },
        required_scopes: vec!["mcp".into()],
        default_role: Some(Role::Readonly),
    }
}

pub fn role_def(name: &str) -> RoleDef {
    RoleDef {
        name: name.into(),
        description: "reads graphs".into(),
        permissions: vec![Permission {
            kinds: vec![ItemKind::Tool, ItemKind::Resource],
            target: target("falkor/query"),
            conditions: vec![Condition::Matches {
                argument: "graph".into(),
                matches: "acme_*".into(),
            }],
        }],
    }
}

pub fn grant(grantee: Grantee, pattern: &str, effect: Effect) -> Grant {
    Grant {
        grantee,
        target: target(pattern),
        effect,
    }
}

/// A tenant's own server definition.
pub fn server_def(id: &str) -> switchboard_domain::RawUpstream {
    switchboard_domain::RawUpstream {
        transport: Some("streamable-http".into()),
        url: Some(format!("https://mcp.{id}.example/mcp")),
        headers: [(
            "Authorization".to_owned(),
            "Bearer {{secret.crm}}".to_owned(),
        )]
        .into(),
        ..Default::default()
    }
}

/// Creates tenant `id` with one of everything (and an expired token revocation) and returns
/// what `load_directory` must report for it. Grants are in no particular order: compare
/// through [`normalized`].
pub async fn populate(store: &Store, id: &str) -> TenantDirectory {
    let mut tenant = Tenant::new(t(id), format!("{id} Inc"));
    tenant.plan = Plan::Enterprise;
    tenant.status = TenantStatus::Trial;
    tenant.domains = vec![format!("{id}.example.com"), format!("mcp.{id}.example")];
    tenant.domains.sort();
    tenant.settings.max_sessions = Some(40);
    tenant.settings.features.insert("beta".into(), true);
    store.create_tenant(&tenant).await.unwrap();
    let scope = store.tenant(&t(id));
    let owner = u(&format!("owner@{id}.example"));
    let members = vec![
        Membership {
            user: u(SHARED_USER),
            role: Role::Member,
        },
        Membership {
            user: owner.clone(),
            role: Role::Owner,
        },
    ];
    for m in &members {
        scope.add_member(&m.user, m.role.clone()).await.unwrap();
    }
    let groups = vec![
        Group {
            name: g("eng"),
            description: "Engineering".into(),
            members: vec![u(SHARED_USER), owner.clone()],
        },
        Group {
            name: g("ops"),
            description: String::new(),
            members: vec![],
        },
    ];
    for group in &groups {
        scope
            .create_group(&group.name, &group.description)
            .await
            .unwrap();
        for member in &group.members {
            scope.add_group_member(&group.name, member).await.unwrap();
        }
    }
    let roles = vec![role_def("graph-reader")];
    scope.put_role(&roles[0]).await.unwrap();
    let ci = client(id, "ci");
    let grants = vec![
        grant(Grantee::Group(g("eng")), "git*/create_*", Effect::Allow),
        grant(Grantee::User(owner.clone()), "admin/*", Effect::Deny),
        grant(Grantee::Role(Role::Member), "time/*", Effect::Allow),
        grant(
            Grantee::Role(Role::parse("graph-reader").unwrap()),
            "falkor/*",
            Effect::Allow,
        ),
        grant(Grantee::Client(ci.id.clone()), "*", Effect::Allow),
    ];
    for grant in &grants {
        scope.add_grant(grant).await.unwrap();
    }
    let mut client_key = key(id, &format!("{id}key0002"));
    client_key.owner = KeyOwner::Client(ci.id.clone());
    client_key.restrictions = vec![];
    client_key.expires_at = None;
    let api_keys = vec![key(id, &format!("{id}key0001")), client_key];
    for k in &api_keys {
        scope.create_api_key(k).await.unwrap();
    }
    scope.create_client(&ci).await.unwrap();
    let issuers = vec![issuer(id)];
    scope.put_issuer(&issuers[0]).await.unwrap();
    scope
        .revoke_token(&format!("live-{id}"), LATER)
        .await
        .unwrap();
    scope.revoke_token(&format!("dead-{id}"), 10).await.unwrap();
    let servers = vec![
        scope
            .put_server("crm", "our CRM", &server_def(id), true, None, 20)
            .await
            .unwrap()
            .after,
    ];
    normalized(TenantDirectory {
        tenant,
        members,
        groups,
        roles,
        grants,
        api_keys,
        clients: vec![ci],
        issuers,
        revoked_tokens: vec![format!("live-{id}")],
        servers,
    })
}

/// `entry` with its grants in a fixed order (the store keeps them by creation time, and
/// grants made within one second have no order between them).
pub fn normalized(mut entry: TenantDirectory) -> TenantDirectory {
    entry.grants.sort_by_key(|g| format!("{g:?}"));
    entry
}

/// Tenant `id`'s entry of a freshly loaded directory, normalized.
pub async fn entry(store: &Store, id: &str) -> Option<TenantDirectory> {
    let directory = store.load_directory().await.unwrap();
    directory
        .tenants
        .into_iter()
        .find(|e| e.tenant.id.as_str() == id)
        .map(normalized)
}
