//! The MCP adapter: an rmcp `ServerHandler` that lists the catalog and runs tool calls on the
//! blocking pool, and serves live resources (`dashboard://overview/{timeframe}`,
//! `dashboard://budgets`) that read as a tool's JSON and notify subscribers when data changes.
//! No business logic here: everything goes through `catalog::call`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, ResourceUpdatedNotificationParam, ServerCapabilities,
    ServerConfig, SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{Peer, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value};

use crate::catalog::{self, CallError};
use crate::dashboard::Dashboard;
use crate::jsonrpc;
use crate::wire::Timeframe;

const INSTRUCTIONS: &str = "Answers questions about the usage of LLM agents (cost in USD, calls, tokens, errors, latency) from a local usage log. Start with dashboard_get_overview; drill down with dashboard_get_agents, dashboard_get_models, dashboard_get_timeline and dashboard_get_executions. Every answer echoes the resolved window as period {start, end}; pass that end back to page through a window that does not move.";

/// The resource of the overview of one timeframe.
const OVERVIEW_URI_PREFIX: &str = "dashboard://overview/";
const BUDGETS_URI: &str = "dashboard://budgets";
const OVERVIEW_TOOL: &str = "dashboard_get_overview";
const BUDGETS_TOOL: &str = "dashboard_get_budgets";
/// A burst of writes within this delay gives subscribers one notification, not one per write.
const NOTIFY_DEBOUNCE: Duration = Duration::from_millis(200);
/// How often an idle subscription watcher checks that its client is still there.
const PEER_CHECK: Duration = Duration::from_secs(5);

/// The MCP server: the dashboard plus what this process allows. Clones share everything;
/// `for_session` gives a server for a new client that shares the dashboard but has its own
/// resource subscriptions.
#[derive(Clone)]
pub struct DashboardServer {
    dashboard: Dashboard,
    allow_writes: bool,
    tools: Arc<Vec<Tool>>,
    subscriptions: Arc<Subscriptions>,
}

/// One client's `resources/subscribe` set, and whether its notifier task runs.
#[derive(Default)]
struct Subscriptions {
    uris: Mutex<BTreeSet<String>>,
    watching: AtomicBool,
}

impl DashboardServer {
    pub fn new(dashboard: Dashboard, allow_writes: bool) -> Self {
        DashboardServer {
            tools: Arc::new(catalog::tools(allow_writes)),
            dashboard,
            allow_writes,
            subscriptions: Arc::default(),
        }
    }

    /// A server for another client (an HTTP session or request): the same dashboard and tool
    /// list, no subscriptions.
    pub fn for_session(&self) -> Self {
        DashboardServer {
            subscriptions: Arc::default(),
            ..self.clone()
        }
    }

    pub fn dashboard(&self) -> &Dashboard {
        &self.dashboard
    }

    pub fn allow_writes(&self) -> bool {
        self.allow_writes
    }

    /// Serve MCP over this process's stdin/stdout until the client goes away. Each line goes
    /// through `jsonrpc::check` first: a bad one is answered with its JSON-RPC error and the next
    /// line is read; a line over `MAX_MESSAGE_BYTES` is answered too and skipped unbuffered.
    pub async fn serve_stdio(self) -> anyhow::Result<()> {
        let (stdin, stdout) = rmcp::transport::stdio();
        let (transport, writer) =
            jsonrpc::LineTransport::new(stdin, stdout, jsonrpc::MAX_MESSAGE_BYTES);
        let served = async {
            let running = self.serve(transport).await?;
            running.waiting().await?;
            anyhow::Ok(())
        }
        .await;
        // rmcp has dropped the transport: the writer finishes what is queued, then ends.
        if tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .is_err()
        {
            tracing::warn!("stdout did not drain within 5 s");
        }
        served
    }

    /// Run one tool call to a `CallToolResult` (tool errors are results with `isError`).
    pub async fn run_tool(
        &self,
        name: String,
        args: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<CallToolResult, McpError> {
        // The guard lives in this future: dropped with it (the client cancelled or went away),
        // it stops the call's work (`cancel`).
        let (d, _cancel) = self.dashboard.cancellable();
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

    /// The tool call a resource URI reads as, if it names one of our resources.
    fn resource_call(&self, uri: &str) -> Option<(&'static str, Map<String, Value>)> {
        if let Some(timeframe) = uri.strip_prefix(OVERVIEW_URI_PREFIX) {
            let timeframe = Timeframe::parse(timeframe)?;
            let mut args = Map::new();
            args.insert("timeframe".into(), timeframe.as_str().into());
            return Some((OVERVIEW_TOOL, args));
        }
        (uri == BUDGETS_URI && self.tools.iter().any(|t| t.name == BUDGETS_TOOL))
            .then(|| (BUDGETS_TOOL, Map::new()))
    }

    fn unknown_resource(&self, uri: &str) -> McpError {
        McpError::resource_not_found(
            format!(
                "unknown resource {uri:?}; resources are {OVERVIEW_URI_PREFIX}{{timeframe}} (timeframe: {}){}",
                Timeframe::NAMES.join(", "),
                if self.resource_call(BUDGETS_URI).is_some() {
                    format!(" and {BUDGETS_URI}")
                } else {
                    String::new()
                }
            ),
            None,
        )
    }

    /// Send `notifications/resources/updated` for this client's subscriptions after every
    /// change of the data, until the client goes away. One task per client, started on its
    /// first subscription.
    fn watch_subscriptions(&self, peer: Peer<RoleServer>) {
        if self.subscriptions.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let subscriptions = self.subscriptions.clone();
        let mut changes = self.dashboard.store.watch_changes();
        changes.mark_unchanged();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { break },
                    _ = tokio::time::sleep(PEER_CHECK) => {
                        if peer.is_transport_closed() { break }
                        continue;
                    }
                }
                tokio::time::sleep(NOTIFY_DEBOUNCE).await;
                changes.mark_unchanged();
                let uris: Vec<String> = subscriptions
                    .uris
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned()
                    .collect();
                for uri in uris {
                    let sent = peer
                        .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                        .await;
                    if sent.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// The resource list: the overview of every timeframe, and the budgets when the catalog has them.
fn resources(with_budgets: bool) -> Vec<Resource> {
    let mut out: Vec<Resource> = Timeframe::NAMES
        .iter()
        .map(|tf| {
            Resource::new(
                format!("{OVERVIEW_URI_PREFIX}{tf}"),
                format!("overview-{tf}"),
            )
            .with_title(format!("Usage overview ({tf})"))
            .with_description(format!(
                "dashboard_get_overview with timeframe {tf}, updated as executions arrive"
            ))
            .with_mime_type("application/json")
        })
        .collect();
    if with_budgets {
        out.push(
            Resource::new(BUDGETS_URI, "budgets")
                .with_title("Budgets")
                .with_description("dashboard_get_budgets, updated as spend changes")
                .with_mime_type("application/json"),
        );
    }
    out
}

impl ServerHandler for DashboardServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
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
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let run = self.run_tool(request.name.into_owned(), request.arguments);
        tokio::select! {
            out = run => Ok(out?.into()),
            // `notifications/cancelled` from the client: dropping `run` stops the work.
            () = context.ct.cancelled() => Err(McpError::internal_error(
                "the request was cancelled by the client",
                None,
            )),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(resources(
            self.resource_call(BUDGETS_URI).is_some(),
        )))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(format!("{OVERVIEW_URI_PREFIX}{{timeframe}}"), "overview")
                .with_title("Usage overview")
                .with_description(format!(
                    "dashboard_get_overview of a rolling window; timeframe is one of {}",
                    Timeframe::NAMES.join(", ")
                ))
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri;
        let Some((tool, args)) = self.resource_call(&uri) else {
            return Err(self.unknown_resource(&uri));
        };
        let d = self.dashboard.clone();
        let allow = self.allow_writes;
        let value = tokio::task::spawn_blocking(move || catalog::call(&d, allow, tool, Some(args)))
            .await
            .map_err(|e| McpError::internal_error(format!("resource task failed: {e}"), None))?
            .map_err(|e| {
                tracing::error!(error = %e, %uri, "resource read failed");
                McpError::internal_error(format!("cannot read {uri}: {e}"), None)
            })?;
        let text = serde_json::to_string(&value)
            .map_err(|e| McpError::internal_error(e.to_string(), None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri).with_mime_type("application/json")
        ])
        .into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if self.resource_call(&request.uri).is_none() {
            return Err(self.unknown_resource(&request.uri));
        }
        self.subscriptions
            .uris
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request.uri);
        self.watch_subscriptions(context.peer);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions
            .uris
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&request.uri);
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let uris = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|uri| self.resource_call(uri).is_some())
            .cloned();
        Some(
            SubscriptionFilter::builder()
                .resource_subscriptions(uris)
                .build(),
        )
    }

    /// 2026-07-28 `subscriptions/listen`: notify the accepted resources after every change until
    /// the client cancels the stream.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        let mut changes = self.dashboard.store.watch_changes();
        changes.mark_unchanged();
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                changed = changes.changed() => if changed.is_err() { return Ok(()) },
            }
            tokio::time::sleep(NOTIFY_DEBOUNCE).await;
            changes.mark_unchanged();
            for uri in &uris {
                if context
                    .sink()
                    .notify_resource_updated(uri.clone())
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
    }
}
