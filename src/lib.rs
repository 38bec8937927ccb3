//! dashboard-mcp: the usage log of LLM agents in embedded SQLite, answered as MCP tools, a REST
//! API and a CLI. See ARCHITECTURE.md for the map.

pub mod alerts;
pub mod anomaly;
pub mod bench;
pub mod cache;
pub mod cancel;
pub mod catalog;
pub mod cli;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod http;
pub mod ingest;
pub mod input;
pub mod jsonrpc;
pub mod mcp;
pub mod money;
pub mod prices;
pub mod sources;
pub mod store;
pub mod time;
pub mod wire;

pub use dashboard::Dashboard;
pub use error::{Error, Result};
