use serde_json::json;

use super::*;
use crate::tenancy::{
    ClientId, Condition, Credential, CredentialKind, GroupName, Target, TenantId, UserId,
};

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn user(tenant_id: &str, email: &str, roles: &[Role], groups: &[&str]) -> Principal {
    Principal {
        tenant: tenant(tenant_id),
        identity: Identity::User(UserId::new(email).unwrap()),
        roles: roles.to_vec(),
        groups: groups.iter().map(|g| GroupName::new(*g).unwrap()).collect(),
        credential: Credential {
            kind: CredentialKind::ApiKey,
            id: "k1".into(),
        },
        restrictions: Vec::new(),
        scopes: Vec::new(),
    }
}

fn grant(grantee: Grantee, target: &str, effect: Effect) -> Grant {
    Grant {
        grantee,
        target: Target::parse(target).unwrap(),
        effect,
    }
}

fn tool<'a>(server: &'a str, name: &'a str) -> Item<'a> {
    Item {
        kind: ItemKind::Tool,
        server,
        name,
        arguments: None,
    }
}

fn acme_policy() -> Policy {
    Policy::new(
        tenant("acme"),
        vec![
            grant(
                Grantee::Group(GroupName::new("eng").unwrap()),
                "github",
                Effect::Allow,
            ),
            grant(
                Grantee::Group(GroupName::new("eng").unwrap()),
                "github/delete_*",
                Effect::Deny,
            ),
            grant(Grantee::Role(Role::Member), "time", Effect::Allow),
            grant(
                Grantee::Client(ClientId::new("ci").unwrap()),
                "git/*",
                Effect::Allow,
            ),
            grant(
                Grantee::User(UserId::new("boss@acme.com").unwrap()),
                "payroll",
                Effect::Deny,
            ),
        ],
        vec![RoleDef {
            name: "graph-reader".into(),
            description: String::new(),
            permissions: vec![Permission {
                kinds: vec![ItemKind::Tool],
                target: Target::parse("falkor/query").unwrap(),
                conditions: vec![Condition::Matches {
                    argument: "graph".into(),
                    matches: "acme_*".into(),
                }],
            }],
        }],
    )
}

#[test]
fn members_see_only_what_is_granted() {
    let policy = acme_policy();
    let ada = user("acme", "ada@acme.com", &[Role::Member], &["eng"]);
    assert!(policy.decide(&ada, tool("github", "create_issue")).allowed);
    assert!(policy.decide(&ada, tool("time", "now")).allowed);
    let d = policy.decide(&ada, tool("payroll", "run"));
    assert_eq!(d.reason, Reason::NoGrant);
    assert!(!d.allowed);
}

#[test]
fn deny_overrides_allow_for_every_role() {
    let policy = acme_policy();
    let ada = user("acme", "ada@acme.com", &[Role::Member], &["eng"]);
    let d = policy.decide(&ada, tool("github", "delete_repo"));
    assert!(!d.allowed);
    assert!(
        d.reason.to_string().contains("github/delete_*"),
        "{}",
        d.reason
    );
    let boss = user("acme", "boss@acme.com", &[Role::Owner], &[]);
    assert!(!policy.decide(&boss, tool("payroll", "run")).allowed);
    assert_eq!(
        policy.decide(&boss, tool("anything", "x")).reason,
        Reason::TenantAdmin
    );
}

#[test]
fn another_tenants_principal_is_denied_even_as_owner() {
    let policy = acme_policy();
    let intruder = user("globex", "eve@globex.com", &[Role::Owner], &["eng"]);
    let d = policy.decide(&intruder, tool("github", "create_issue"));
    assert_eq!(d.reason, Reason::OtherTenant);
}

#[test]
fn readonly_gets_prompts_and_resources_but_no_tools() {
    let policy = acme_policy();
    let reader = user("acme", "r@acme.com", &[Role::Readonly], &["eng"]);
    assert_eq!(
        policy
            .decide(&reader, tool("github", "create_issue"))
            .reason,
        Reason::ReadonlyMayNotUseTools
    );
    let prompt = Item {
        kind: ItemKind::Prompt,
        ..tool("github", "summarise")
    };
    assert!(policy.decide(&reader, prompt).allowed);
}

#[test]
fn credential_bindings_narrow_even_admins() {
    let policy = acme_policy();
    let mut admin = user("acme", "a@acme.com", &[Role::Admin], &[]);
    admin.restrictions = vec![Target::parse("time").unwrap()];
    assert!(policy.decide(&admin, tool("time", "now")).allowed);
    assert_eq!(
        policy.decide(&admin, tool("github", "x")).reason,
        Reason::OutsideCredentialBinding
    );
}

#[test]
fn clients_match_client_grants() {
    let policy = acme_policy();
    let mut ci = user("acme", "x@acme.com", &[], &[]);
    ci.identity = Identity::Client(ClientId::new("ci").unwrap());
    assert!(policy.decide(&ci, tool("git", "log")).allowed);
    assert!(!policy.decide(&ci, tool("github", "x")).allowed);
}

#[test]
fn custom_role_conditions_are_checked_on_calls_only() {
    let policy = acme_policy();
    let analyst = user(
        "acme",
        "an@acme.com",
        &[Role::Custom("graph-reader".into())],
        &[],
    );
    assert!(
        policy.decide(&analyst, tool("falkor", "query")).allowed,
        "listed"
    );
    let ok = json!({"graph": "acme_sales"});
    let call = Item {
        arguments: ok.as_object(),
        ..tool("falkor", "query")
    };
    assert!(policy.decide(&analyst, call).allowed);
    let other = json!({"graph": "globex_sales"});
    let call = Item {
        arguments: other.as_object(),
        ..tool("falkor", "query")
    };
    let d = policy.decide(&analyst, call);
    assert!(!d.allowed);
    assert!(d.reason.to_string().contains("graph-reader"));
}

#[test]
fn the_anonymous_default_owner_sees_everything_of_default_only() {
    let policy = Policy::new(TenantId::default_tenant(), vec![], vec![]);
    let anon = Principal::anonymous();
    assert!(policy.decide(&anon, tool("demo", "echo")).allowed);
    assert!(!acme_policy().decide(&anon, tool("time", "now")).allowed);
}
