//! One module per subcommand; `client` and `output` are what the client commands share.

pub mod bench;
pub mod client;
pub mod cluster;
pub mod config;
pub mod consume;
pub mod group;
pub mod output;
pub mod produce;
pub mod server;
pub mod topic;
