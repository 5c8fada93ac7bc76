//! The `switchboard` binary's library: configuration, HTTP wiring, lifecycle, the demo
//! upstream and the stdio bridge. Integration tests start the real server through [`app`].

pub mod admin;
pub mod admin_cli;
pub mod app;
pub mod audit;
pub mod authn;
pub mod config;
pub mod connect;
pub mod demo;
pub mod forwarded;
pub mod limits;
pub mod metrics;
pub mod oauth;
pub mod origin_guard;
pub mod reply;
pub mod retention;
pub mod secrets;
pub mod tenancy;
pub mod tenant_servers;
pub mod token_cli;
pub mod traces;

pub use app::{Running, start};
pub use config::Config;
