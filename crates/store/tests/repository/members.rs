//! Members, groups, custom roles and grants of one tenant.

use switchboard_domain::tenancy::{
    ClientId, Effect, Grantee, Group, Membership, Role, RoleDef, Tenant,
};
use switchboard_store::StoreError;

use crate::fixtures::{SHARED_USER, g, grant, role_def, t, u};
use crate::harness::Db;

both!(
    members_round_trip,
    groups_round_trip,
    roles_and_grants_round_trip,
    writes_to_a_missing_tenant_are_not_found,
);

fn not_found(result: Result<(), StoreError>, what: &str) -> bool {
    matches!(result, Err(StoreError::NotFound { what: w, .. }) if w == what)
}

async fn members_round_trip(db: Db) {
    let store = &db.store;
    store
        .create_tenant(&Tenant::new(t("acme"), "Acme"))
        .await
        .unwrap();
    let acme = store.tenant(&t("acme"));
    acme.add_member(&u("bob@x.example"), Role::Admin)
        .await
        .unwrap();
    acme.add_member(&u(SHARED_USER), Role::Member)
        .await
        .unwrap();
    // add_member created the user; naming it later does not disturb the membership.
    store.upsert_user(&u(SHARED_USER), "Ada").await.unwrap();
    store.upsert_user(&u(SHARED_USER), "Ada L.").await.unwrap();
    acme.set_member_role(&u(SHARED_USER), Role::Custom("graph-reader".into()))
        .await
        .unwrap();
    assert_eq!(
        acme.members().await.unwrap(),
        vec![
            Membership {
                user: u(SHARED_USER),
                role: Role::Custom("graph-reader".into()),
            },
            Membership {
                user: u("bob@x.example"),
                role: Role::Admin,
            },
        ]
    );
    acme.remove_member(&u("bob@x.example")).await.unwrap();
    assert_eq!(acme.members().await.unwrap().len(), 1);
    assert!(not_found(
        acme.remove_member(&u("bob@x.example")).await,
        "member"
    ));
    assert!(not_found(
        acme.set_member_role(&u("eve@x.example"), Role::Owner).await,
        "member"
    ));
}

async fn groups_round_trip(db: Db) {
    let store = &db.store;
    store
        .create_tenant(&Tenant::new(t("acme"), "Acme"))
        .await
        .unwrap();
    let acme = store.tenant(&t("acme"));
    for email in [SHARED_USER, "bob@x.example", "cy@x.example"] {
        acme.add_member(&u(email), Role::Member).await.unwrap();
    }
    acme.create_group(&g("eng"), "Engineering").await.unwrap();
    acme.create_group(&g("ops"), "").await.unwrap();
    assert!(matches!(
        acme.create_group(&g("eng"), "again").await,
        Err(StoreError::Conflict { what: "group", .. })
    ));
    for email in ["cy@x.example", SHARED_USER, "bob@x.example"] {
        acme.add_group_member(&g("eng"), &u(email)).await.unwrap();
    }
    acme.add_group_member(&g("ops"), &u("cy@x.example"))
        .await
        .unwrap();
    assert!(matches!(
        acme.add_group_member(&g("eng"), &u("cy@x.example")).await,
        Err(StoreError::Conflict { .. })
    ));
    // Only members of the tenant join its groups, and only groups that exist.
    assert!(not_found(
        acme.add_group_member(&g("eng"), &u("eve@x.example")).await,
        "member"
    ));
    assert!(not_found(
        acme.add_group_member(&g("nope"), &u("cy@x.example")).await,
        "group"
    ));
    assert_eq!(
        acme.groups().await.unwrap(),
        vec![
            Group {
                name: g("eng"),
                description: "Engineering".into(),
                members: vec![u(SHARED_USER), u("bob@x.example"), u("cy@x.example")],
            },
            Group {
                name: g("ops"),
                description: String::new(),
                members: vec![u("cy@x.example")],
            },
        ]
    );
    acme.remove_group_member(&g("eng"), &u("bob@x.example"))
        .await
        .unwrap();
    assert!(not_found(
        acme.remove_group_member(&g("eng"), &u("bob@x.example"))
            .await,
        "group member"
    ));
    // Leaving the tenant leaves its groups; deleting a group drops its memberships.
    acme.remove_member(&u("cy@x.example")).await.unwrap();
    acme.delete_group(&g("ops")).await.unwrap();
    assert!(not_found(acme.delete_group(&g("ops")).await, "group"));
    let groups = acme.groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].members, vec![u(SHARED_USER)]);
}

async fn roles_and_grants_round_trip(db: Db) {
    let store = &db.store;
    store
        .create_tenant(&Tenant::new(t("acme"), "Acme"))
        .await
        .unwrap();
    let acme = store.tenant(&t("acme"));
    let mut reader = role_def("graph-reader");
    acme.put_role(&reader).await.unwrap();
    acme.put_role(&role_def("auditor")).await.unwrap();
    // put_role replaces.
    reader.description = "reads all graphs".into();
    reader.permissions[0].conditions.clear();
    acme.put_role(&reader).await.unwrap();
    assert_eq!(
        acme.roles().await.unwrap(),
        vec![role_def("auditor"), reader]
    );
    // Built-in names are not custom roles.
    for name in ["owner", "Admin", ""] {
        let def = RoleDef {
            name: name.into(),
            description: String::new(),
            permissions: vec![],
        };
        assert!(acme.put_role(&def).await.is_err(), "{name:?}");
    }
    acme.delete_role("auditor").await.unwrap();
    assert!(not_found(acme.delete_role("auditor").await, "role"));
    assert_eq!(acme.roles().await.unwrap().len(), 1);

    let grants = [
        grant(Grantee::User(u(SHARED_USER)), "git*/create_*", Effect::Deny),
        grant(Grantee::Group(g("eng")), "github", Effect::Allow),
        grant(Grantee::Role(Role::Readonly), "time/now", Effect::Allow),
        grant(
            Grantee::Role(Role::Custom("graph-reader".into())),
            "falkor/q?ery",
            Effect::Allow,
        ),
        grant(
            Grantee::Client(ClientId::new("ci").unwrap()),
            "*",
            Effect::Allow,
        ),
    ];
    let mut stored = Vec::new();
    for grant in &grants {
        stored.push((acme.add_grant(grant).await.unwrap(), grant.clone()));
    }
    let mut loaded = acme.grants().await.unwrap();
    loaded.sort_by(|a, b| a.0.cmp(&b.0));
    stored.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(loaded, stored);
    let removed = stored.remove(0);
    acme.remove_grant(&removed.0).await.unwrap();
    assert!(not_found(acme.remove_grant(&removed.0).await, "grant"));
    let mut loaded = acme.grants().await.unwrap();
    loaded.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(loaded, stored);
}

async fn writes_to_a_missing_tenant_are_not_found(db: Db) {
    let store = &db.store;
    let ghost = store.tenant(&t("ghost"));
    let before = store.revision().await.unwrap();
    let missing = |r: Result<(), StoreError>| matches!(r, Err(StoreError::NotFound { what: "tenant", ref id }) if id == "ghost");
    assert!(missing(
        ghost.add_member(&u(SHARED_USER), Role::Member).await
    ));
    assert!(missing(ghost.create_group(&g("eng"), "").await));
    assert!(missing(ghost.put_role(&role_def("graph-reader")).await));
    assert!(missing(
        ghost
            .add_grant(&grant(Grantee::Role(Role::Member), "*", Effect::Allow))
            .await
            .map(drop)
    ));
    assert!(missing(ghost.revoke_token("jti", i64::MAX).await));
    assert_eq!(store.revision().await.unwrap(), before);
    assert_eq!(store.list_tenants().await.unwrap(), vec![]);
}
