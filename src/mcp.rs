//! The MCP adapter: an rmcp `ServerHandler` that lists the catalog and runs tool calls on the
//! blocking pool. No business logic here: everything goes through `catalog::call`.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};

use crate::catalog::{self, CallError};
use crate::dashboard::Dashboard;

const INSTRUCTIONS: &str = "Answers questions about the usage of LLM agents (cost in USD, calls, tokens, errors, latency) from a local usage log. Start with dashboard_get_overview; drill down with dashboard_get_agents, dashboard_get_models, dashboard_get_timeline and dashboard_get_executions. Every answer echoes the resolved window as period {start, end}; pass that end back to page through a window that does not move.";

/// The MCP server: the dashboard plus what this process allows.
#[derive(Clone)]
pub struct DashboardServer {
    dashboard: Dashboard,
    allow_writes: bool,
    tools: Arc<Vec<Tool>>,
}

impl DashboardServer {
    pub fn new(dashboard: Dashboard, allow_writes: bool) -> Self {
        DashboardServer {
            tools: Arc::new(catalog::tools(allow_writes)),
            dashboard,
            allow_writes,
        }
    }

    /// Serve MCP over this process's stdin/stdout until the client goes away.
    pub async fn serve_stdio(self) -> anyhow::Result<()> {
        let running = self.serve(rmcp::transport::stdio()).await?;
        running.waiting().await?;
        Ok(())
    }

    /// Run one tool call to a `CallToolResult` (tool errors are results with `isError`).
    pub async fn run_tool(
        &self,
        name: String,
        args: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<CallToolResult, McpError> {
        let d = self.dashboard.clone();
        let allow = self.allow_writes;
        let out = tokio::task::spawn_blocking(move || catalog::call(&d, allow, &name, args))
            .await
            .map_err(|e| McpError::internal_error(format!("tool task failed: {e}"), None))?;
        Ok(match out {
            Ok(value) => CallToolResult::structured(value),
            Err(CallError::UnknownTool(..)) => {
                return Err(McpError::invalid_params(out.unwrap_err().to_string(), None));
            }
            Err(e @ CallError::WritesDisabled(_)) => {
                CallToolResult::error(vec![ContentBlock::text(e.to_string())])
            }
            Err(CallError::Tool(e)) => {
                if !e.is_invalid_input() {
                    tracing::error!(error = %e, "tool failed");
                }
                CallToolResult::error(vec![ContentBlock::text(e.to_string())])
            }
        })
    }
}

impl ServerHandler for DashboardServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                    .with_title("dashboard-mcp"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        Ok(self
            .run_tool(request.name.into_owned(), request.arguments)
            .await?
            .into())
    }
}
