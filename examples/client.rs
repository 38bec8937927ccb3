//! A Rust MCP client for dashboard-mcp: starts the server over stdio, lists its tools and asks
//! for this week's overview and the five most expensive agents.
//!
//! Run: `cargo run --example client` (uses the default database; `--db PATH` to pick another,
//! e.g. after `cargo run -- --db /tmp/demo.db demo`).

use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{object, ServiceExt};
use tokio::process::Command;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The server binary: $DASHBOARD_MCP_BIN, else the one cargo built next to this example.
    let server = match std::env::var_os("DASHBOARD_MCP_BIN") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::current_exe()?
            .parent()
            .and_then(|d| d.parent())
            .map(|d| d.join("dashboard-mcp"))
            .unwrap_or_default(),
    };
    let passthrough: Vec<String> = std::env::args().skip(1).collect();
    let client = ()
        .serve(TokioChildProcess::new(Command::new(server).configure(
            |cmd| {
                cmd.args(&passthrough).arg("serve");
            },
        ))?)
        .await?;

    if let Some(info) = client.peer_info().and_then(|p| p.server_info.clone()) {
        eprintln!("connected to {} {}", info.name, info.version);
    }
    for tool in client.list_all_tools().await? {
        eprintln!("tool {}: {}", tool.name, tool.title.unwrap_or_default());
    }
    for (tool, args) in [
        ("dashboard_get_overview", object!({ "timeframe": "week" })),
        (
            "dashboard_get_agents",
            object!({ "timeframe": "week", "limit": 5 }),
        ),
    ] {
        let result = client
            .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
            .await?;
        let answer = result.structured_content.unwrap_or_default();
        #[allow(clippy::print_stdout)]
        {
            println!("{tool}: {}", serde_json::to_string_pretty(&answer)?);
        }
    }
    client.cancel().await?;
    Ok(())
}
