use switchboard_domain::limits::Limit;
use switchboard_domain::tenancy::{Credential, Role, UserId};

use super::*;

fn rate(text: &str) -> Rate {
    text.parse().unwrap()
}

fn member(tenant: &str, email: &str, key: &str) -> Principal {
    Principal {
        tenant: TenantId::new(tenant).unwrap(),
        identity: Identity::User(UserId::new(email).unwrap()),
        roles: vec![Role::Member],
        groups: Vec::new(),
        credential: Credential {
            kind: CredentialKind::ApiKey,
            id: key.into(),
        },
        restrictions: Vec::new(),
        scopes: Vec::new(),
    }
}

fn limits(user: &str) -> RateLimits {
    RateLimits {
        user: Some(Limit::Rate(rate(user))),
        ..Default::default()
    }
}

async fn admitted(limiter: &Limiter, limits: &RateLimits, who: &Principal, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        let outcome = limiter
            .check_request(limits, who, None, None)
            .await
            .unwrap();
        ok += usize::from(outcome.is_none_or(|o| o.allowed()));
    }
    ok
}

#[tokio::test]
async fn the_same_user_name_in_two_tenants_has_two_budgets() {
    let limiter = Limiter::new(LimitsOptions::default()).unwrap();
    let limits = limits("3/min");
    let acme = member("acme", "sam@example.com", "k1");
    let globex = member("globex", "sam@example.com", "k2");
    assert_eq!(admitted(&limiter, &limits, &acme, 5).await, 3);
    assert_eq!(admitted(&limiter, &limits, &globex, 5).await, 3);
    assert_eq!(limiter.stats().refused, 4);
}

#[tokio::test]
async fn a_refusal_names_the_limit_and_when_to_retry() {
    let limiter = Limiter::new(LimitsOptions::default()).unwrap();
    let limits = RateLimits {
        tenant: Some(Limit::Rate(rate("100/min"))),
        key: Some(Limit::Rate(rate("2/min"))),
        ..Default::default()
    };
    let ada = member("acme", "ada@acme.com", "k1");
    let first = limiter
        .check_request(&limits, &ada, None, None)
        .await
        .unwrap()
        .unwrap();
    assert!(first.allowed());
    assert_eq!((first.scope, first.verdict.remaining), (LimitScope::Key, 1));
    limiter
        .check_request(&limits, &ada, None, None)
        .await
        .unwrap();
    let refused = limiter
        .check_request(&limits, &ada, None, None)
        .await
        .unwrap()
        .unwrap();
    assert!(!refused.allowed());
    assert_eq!(refused.scope, LimitScope::Key);
    assert_eq!(refused.rate, rate("2/min"));
    assert!(
        (29..=30).contains(&refused.retry_after_secs()),
        "{refused:?}"
    );
    // Another key of the same user is not limited by the first key's budget.
    let other_key = member("acme", "ada@acme.com", "k2");
    assert!(
        limiter
            .check_request(&limits, &other_key, None, None)
            .await
            .unwrap()
            .unwrap()
            .allowed()
    );
}

#[tokio::test]
async fn addresses_are_limited_before_and_after_authentication() {
    let options = LimitsOptions {
        address: Some(rate("2/min")),
        ..Default::default()
    };
    let limiter = Limiter::new(options).unwrap();
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "192.0.2.2".parse().unwrap();
    for _ in 0..2 {
        assert!(limiter.check_address(a).await.unwrap().unwrap().allowed());
    }
    assert!(!limiter.check_address(a).await.unwrap().unwrap().allowed());
    assert!(limiter.check_address(b).await.unwrap().unwrap().allowed());
    // The per-tenant address limit is its own budget.
    let limits = RateLimits {
        address: Some(Limit::Rate(rate("1/min"))),
        ..Default::default()
    };
    let ada = member("acme", "ada@acme.com", "k1");
    assert!(
        limiter
            .check_request(&limits, &ada, Some(a), None)
            .await
            .unwrap()
            .unwrap()
            .allowed()
    );
    assert!(
        !limiter
            .check_request(&limits, &ada, Some(a), None)
            .await
            .unwrap()
            .unwrap()
            .allowed()
    );
    assert!(
        limiter
            .check_request(&limits, &ada, Some(b), None)
            .await
            .unwrap()
            .unwrap()
            .allowed()
    );
}

#[tokio::test]
async fn anonymous_callers_have_no_user_or_key_budget_and_nothing_configured_checks_nothing() {
    let limiter = Limiter::new(LimitsOptions::default()).unwrap();
    let anonymous = Principal::anonymous();
    let limits = RateLimits {
        user: Some(Limit::Rate(rate("1/min"))),
        key: Some(Limit::Rate(rate("1/min"))),
        ..Default::default()
    };
    assert_eq!(
        limiter
            .check_request(&limits, &anonymous, None, None)
            .await
            .unwrap(),
        None
    );
    let ip = "192.0.2.1".parse().unwrap();
    assert_eq!(limiter.check_address(ip).await.unwrap(), None);
    let tenant = TenantId::new("acme").unwrap();
    assert_eq!(
        limiter
            .check_tool(&RateLimits::default(), &tenant, "a__b")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn tools_are_limited_per_tenant_and_tool() {
    let limiter = Limiter::new(LimitsOptions::default()).unwrap();
    let limits = RateLimits {
        tool: Some(Limit::Rate(rate("1/min"))),
        ..Default::default()
    };
    let acme = TenantId::new("acme").unwrap();
    let globex = TenantId::new("globex").unwrap();
    let check = |t, name| limiter.check_tool(&limits, t, name);
    assert!(check(&acme, "git__log").await.unwrap().unwrap().allowed());
    assert!(!check(&acme, "git__log").await.unwrap().unwrap().allowed());
    assert!(check(&acme, "git__diff").await.unwrap().unwrap().allowed());
    assert!(check(&globex, "git__log").await.unwrap().unwrap().allowed());
}

#[test]
fn a_tenant_gets_its_plan_defaults_under_its_own_settings() {
    let options = LimitsOptions {
        plans: PlanLimits {
            free: limits("100/min"),
            pro: limits("1000/min"),
            enterprise: RateLimits::default(),
        },
        ..Default::default()
    };
    let limiter = Limiter::new(options).unwrap();
    let mut tenant = Tenant::new(TenantId::new("acme").unwrap(), "Acme");
    assert_eq!(
        limiter.effective(&tenant).rate(LimitScope::User),
        Some(rate("100/min"))
    );
    tenant.plan = Plan::Pro;
    assert_eq!(
        limiter.effective(&tenant).rate(LimitScope::User),
        Some(rate("1000/min"))
    );
    tenant.settings.rate_limits = Some(RateLimits {
        user: Some(Limit::Unlimited),
        tenant: Some(Limit::Rate(rate("5/s"))),
        ..Default::default()
    });
    let effective = limiter.effective(&tenant);
    assert_eq!(effective.rate(LimitScope::User), None);
    assert_eq!(effective.rate(LimitScope::Tenant), Some(rate("5/s")));
}

#[test]
fn an_invalid_redis_url_is_refused_with_an_example() {
    let options = LimitsOptions {
        redis_url: Some("http://nope".into()),
        ..Default::default()
    };
    let err = Limiter::new(options).err().unwrap().to_string();
    assert!(err.contains("redis://127.0.0.1:6379"), "{err}");
}

#[test]
fn every_key_of_a_request_carries_its_tenant_as_a_hash_tag() {
    let limiter = Limiter::new(LimitsOptions::default()).unwrap();
    let every = RateLimits {
        tenant: Some(Limit::Rate(rate("100/min"))),
        user: Some(Limit::Rate(rate("50/min"))),
        key: Some(Limit::Rate(rate("20/min"))),
        address: Some(Limit::Rate(rate("10/min"))),
        ..Default::default()
    };
    let ada = member("acme", "ada@acme.com", "k1");
    let address = "192.0.2.7".parse().ok();
    let checks = limiter.request_checks(&every, &ada, address, None);
    let keys: Vec<(LimitScope, &str, String)> = checks
        .iter()
        .map(|c| (c.scope, c.key, c.rate.to_string()))
        .collect();
    assert_eq!(
        keys,
        [
            (LimitScope::Tenant, "sb:rl:{acme}:t", "100/min".to_owned()),
            (
                LimitScope::User,
                "sb:rl:{acme}:u:user:ada@acme.com",
                "50/min".to_owned()
            ),
            (LimitScope::Key, "sb:rl:{acme}:k:k1", "20/min".to_owned()),
            (
                LimitScope::Address,
                "sb:rl:{acme}:a:192.0.2.7",
                "10/min".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn the_platform_address_decided_with_a_request_charges_all_or_nothing() {
    let options = LimitsOptions {
        address: Some(rate("2/min")),
        ..Default::default()
    };
    let limiter = Limiter::new(options).unwrap();
    // In process the address is decided on its own, first.
    assert!(!limiter.defers_address());
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let ada = member("acme", "ada@acme.com", "k1");
    let user = limits("1/min");
    // The platform address key comes first, with no tenant in it.
    let checks = limiter.request_checks(&user, &ada, Some(a), Some(a));
    let keys: Vec<&str> = checks.iter().map(|c| c.key).collect();
    assert_eq!(
        keys,
        ["sb:rl:ip:192.0.2.1", "sb:rl:{acme}:u:user:ada@acme.com"]
    );
    let decide = || limiter.check_request(&user, &ada, Some(a), Some(a));
    assert!(decide().await.unwrap().unwrap().allowed());
    // The user is out of budget: refused, and the address is not charged for it.
    let refused = decide().await.unwrap().unwrap();
    assert_eq!(
        (refused.allowed(), refused.scope),
        (false, LimitScope::User)
    );
    assert!(limiter.check_address(a).await.unwrap().unwrap().allowed());
    // Now the address is spent too (two of two): refused on the address, whoever asks.
    let bob = member("acme", "bob@acme.com", "k2");
    let refused = limiter
        .check_request(&user, &bob, Some(a), Some(a))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (refused.allowed(), refused.scope),
        (false, LimitScope::Address)
    );
    // … and bob's own budget was left whole by that refusal.
    assert!(
        limiter
            .check_request(&user, &bob, None, None)
            .await
            .unwrap()
            .unwrap()
            .allowed()
    );
}
