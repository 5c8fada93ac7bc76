//! The tenancy model: tenants, users, roles, groups, grants, principals and the policy that
//! decides what a principal may list and call.

pub mod condition;
pub mod directory;
pub mod grant;
pub mod ids;
pub mod policy;
pub mod principal;
pub mod role;
pub mod target;
pub mod tenant;

pub use condition::{CallFacts, CelExpression, Condition};
pub use directory::{
    ApiKeyRecord, ClaimMapping, Directory, Group, IssuerConfig, KeyOwner, Membership,
    ServiceClient, TenantDirectory, TenantServer,
};
pub use grant::{Effect, Grant, Grantee};
pub use ids::{ClientId, GroupName, IdError, TenantId, UserId};
pub use policy::{Decision, Item, Policy, Reason};
pub use principal::{Credential, CredentialKind, Identity, Principal, SessionOwner};
pub use role::{ItemKind, Permission, Role, RoleDef};
pub use target::{Target, TargetError};
pub use tenant::{Plan, Quotas, Tenant, TenantSettings, TenantStatus};
