//! `dashboard_get_executions`: the raw log of one window, newest first, paged.

use crate::error::Result;
use crate::money::to_usd;
use crate::store::{ExecutionFilter, ExecutionRow, Filter};
use crate::time::format_utc;
use crate::wire::{
    ExecutionItem, ExecutionTokens, ExecutionsInput, ExecutionsOutput, StatusFilter,
};

use super::{fitting, json_len, page_args, pagination, period, resolve_window, Dashboard};

/// The executions item shape (also used by live updates).
pub fn execution_item(r: ExecutionRow) -> ExecutionItem {
    ExecutionItem {
        id: r.id,
        timestamp: format_utc(r.ts),
        agent_id: r.agent_id,
        model: r.model,
        duration: r.duration_ms,
        cost: to_usd(r.cost),
        cost_source: r.cost_source.name(),
        tokens: ExecutionTokens {
            prompt: r.prompt_tokens as u64,
            completion: r.completion_tokens as u64,
            cache_read: r.cache_read_tokens as u64,
            cache_write: r.cache_write_tokens as u64,
            total: (r.prompt_tokens
                + r.completion_tokens
                + r.cache_read_tokens
                + r.cache_write_tokens) as u64,
        },
        success: r.success,
        error: r.error,
        status_code: r.status_code,
        session_id: r.session_id,
        task_type: r.task_type,
        metadata: r.metadata.and_then(|m| serde_json::from_str(&m).ok()),
        metadata_omitted_bytes: None,
    }
}

impl Dashboard {
    pub fn executions(&self, input: ExecutionsInput) -> Result<ExecutionsOutput> {
        let w = resolve_window(&input.window_args(), self.now())?;
        let (limit, offset) = page_args(input.limit, input.offset, 50, 500)?;
        let ef = ExecutionFilter {
            filter: Filter {
                agent: input.agent_id.clone(),
                model: input.model.clone(),
            },
            success: input.status.map(|s| s == StatusFilter::Success),
        };
        let (total, rows) = self
            .store
            .read(|c| c.executions(&w, &ef, limit as u32, offset, &self.cancel))?;
        let total = total as u64;
        let mut items: Vec<ExecutionItem> = rows.into_iter().map(execution_item).collect();
        let mut out = ExecutionsOutput {
            period: period(&w),
            executions: Vec::new(),
            pagination: pagination(total, limit, offset, 0),
        };
        let n = fitting(&items, json_len(&out));
        items.truncate(n.max(1));
        if let (0, Some(first)) = (n, items.first_mut()) {
            // One execution larger than a result: shipped without its metadata rather than an
            // empty page whose `nextOffset` never moves on.
            first.metadata_omitted_bytes = first.metadata.take().map(|m| json_len(&m) as u64);
        }
        out.pagination = pagination(total, limit, offset, items.len());
        out.executions = items;
        Ok(out)
    }
}
