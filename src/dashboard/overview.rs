//! `dashboard_get_overview`: totals, rates and trends of one window.

use crate::error::Result;
use crate::money::to_usd;
use crate::store::{Filter, Totals};
use crate::time::HOUR;
use crate::wire::{OverviewInput, OverviewOutput, OverviewSummary, OverviewTrends, TopAgent};

use super::{joined, percent, period, resolve_window, trend, Dashboard};

impl Dashboard {
    pub fn overview(&self, input: OverviewInput) -> Result<OverviewOutput> {
        let now = self.now();
        let w = resolve_window(&input.window_args(), now)?;
        let f = Filter {
            agent: input.agent_id.clone(),
            model: None,
        };
        let prev_w = w.previous();
        // Three independent parts on three threads: the anomaly counts; the previous window and
        // the p95; the per-agent sums (whose total is the window's) and the budget.
        let (cur, earlier, anomalies) = std::thread::scope(|s| {
            let anomalies = s.spawn(|| self.anomaly_summary(&w, input.agent_id.as_deref()));
            let earlier = s.spawn(|| {
                self.store
                    .read(|c| Ok((c.totals(&prev_w, &f)?, c.p95_duration(&w, &f)?)))
            });
            let cur = self.store.read(|c| {
                let agents = c.agent_totals(&w, &f)?;
                let mut cur = Totals::default();
                for a in &agents {
                    cur.add(&a.totals);
                }
                let budget =
                    self.overview_budget_status(c, now, input.agent_id.as_deref(), cur.cost)?;
                Ok((cur, agents, budget, c.pricing(&w, &f)?))
            });
            (cur, joined(earlier), joined(anomalies))
        });
        let (cur, agents, budget_status, pricing) = cur?;
        let (prev, p95) = earlier?;
        let anomalies = anomalies?;
        let top_agent = agents
            .iter()
            .max_by(|a, b| {
                a.totals
                    .cost
                    .cmp(&b.totals.cost)
                    .then_with(|| b.id.cmp(&a.id))
            })
            .map(|a| TopAgent {
                id: a.id.clone(),
                cost: to_usd(a.totals.cost),
            });
        let summary = OverviewSummary {
            total_cost: to_usd(cur.cost),
            total_calls: cur.calls as u64,
            total_tokens: cur.tokens as u64,
            active_agents: agents.len() as u64,
            period: period(&w),
            success_rate: percent((cur.calls - cur.errors) as f64, cur.calls as f64),
            error_count: cur.errors as u64,
            avg_latency_ms: (cur.timed > 0).then(|| cur.duration_sum / cur.timed as f64),
            p95_latency_ms: p95,
            calls_per_hour: cur.calls as f64 / (w.len() as f64 / HOUR as f64),
            estimated_cost: to_usd(pricing.iter().map(|p| p.estimated_cost).sum()),
            unpriced_calls: pricing.iter().map(|p| p.unpriced_calls as u64).sum(),
            unpriced_models: pricing
                .iter()
                .filter(|p| p.unpriced_calls > 0)
                .map(|p| p.model.clone())
                .collect(),
        };
        let trends = OverviewTrends {
            cost_trend: trend(cur.cost as f64, prev.cost as f64),
            calls_trend: trend(cur.calls as f64, prev.calls as f64),
            tokens_trend: trend(cur.tokens as f64, prev.tokens as f64),
            top_agent,
        };
        Ok(OverviewOutput {
            period: period(&w),
            summary,
            trends,
            budget_status,
            anomalies,
        })
    }
}
