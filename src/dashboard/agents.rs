//! `dashboard_get_agents`: per-agent totals of one window, sorted and paged, with trends.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::error::Result;
use crate::money::to_usd;
use crate::store::{AgentTotals, Filter};
use crate::wire::{
    AgentEntry, AgentMetrics, AgentSort, AgentTrend, AgentsInput, AgentsOutput, SortOrder,
};

use super::budgets::agent_budget_status;
use super::{
    fit_items, joined, json_len, page_args, pagination, percent, period, resolve_window, trend,
    Dashboard,
};

fn success_rate(t: &AgentTotals) -> f64 {
    percent(
        (t.totals.calls - t.totals.errors) as f64,
        t.totals.calls as f64,
    )
    .unwrap_or(0.0)
}

impl Dashboard {
    pub fn agents(&self, input: AgentsInput) -> Result<AgentsOutput> {
        let now = self.now();
        let w = resolve_window(&input.window_args(), now)?;
        let (limit, offset) = page_args(input.limit, input.offset, 10, 1000)?;
        let sort = input.sort_by.unwrap_or(AgentSort::Cost);
        let order = input.order.unwrap_or(SortOrder::Desc);
        let prev_w = w.previous();
        // The previous window (for trends) on a thread of its own, beside the current one.
        let (rows, prev) = std::thread::scope(|s| {
            let prev = s.spawn(|| {
                self.store
                    .read(|c| c.agent_totals(&prev_w, &Filter::default()))
            });
            let rows = self.store.read(|c| c.agent_totals(&w, &Filter::default()));
            (rows, joined(prev))
        });
        let (mut rows, prev) = (rows?, prev?);
        let key = |a: &AgentTotals, b: &AgentTotals| -> Ordering {
            match sort {
                AgentSort::Cost => a.totals.cost.cmp(&b.totals.cost),
                AgentSort::Calls => a.totals.calls.cmp(&b.totals.calls),
                AgentSort::Tokens => a.totals.tokens.cmp(&b.totals.tokens),
                AgentSort::Errors => a.totals.errors.cmp(&b.totals.errors),
                AgentSort::SuccessRate => success_rate(a).total_cmp(&success_rate(b)),
            }
        };
        rows.sort_by(|a, b| {
            let k = key(a, b);
            let k = if order == SortOrder::Desc {
                k.reverse()
            } else {
                k
            };
            k.then_with(|| a.id.cmp(&b.id))
        });
        let total = rows.len() as u64;
        let prev: HashMap<&str, _> = prev.iter().map(|p| (p.id.as_str(), p.totals)).collect();
        let page: Vec<&AgentTotals> = rows
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .collect();
        let ids: Vec<&str> = page.iter().map(|a| a.id.as_str()).collect();
        let budgets = self.store.read(|c| self.agent_budgets(c, now, &ids))?;
        let mut agents: Vec<AgentEntry> = page
            .into_iter()
            .map(|a| {
                let t = &a.totals;
                let p = prev.get(a.id.as_str()).copied().unwrap_or_default();
                AgentEntry {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    metrics: AgentMetrics {
                        total_cost: to_usd(t.cost),
                        total_calls: t.calls as u64,
                        total_tokens: t.tokens as u64,
                        average_cost: (t.calls > 0).then(|| to_usd(t.cost) / t.calls as f64),
                        success_rate: percent((t.calls - t.errors) as f64, t.calls as f64),
                        error_count: t.errors as u64,
                    },
                    trend: AgentTrend {
                        cost_change: trend(t.cost as f64, p.cost as f64),
                        calls_change: trend(t.calls as f64, p.calls as f64),
                    },
                    budget_status: agent_budget_status(budgets.get(&a.id), t.cost),
                }
            })
            .collect();
        let mut out = AgentsOutput {
            period: period(&w),
            agents: Vec::new(),
            total,
            pagination: pagination(total, limit, offset, 0),
        };
        fit_items(&mut agents, json_len(&out));
        out.pagination = pagination(total, limit, offset, agents.len());
        out.agents = agents;
        Ok(out)
    }
}
