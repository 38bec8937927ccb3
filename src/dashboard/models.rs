//! `dashboard_get_models`: per-model totals of one window and each model's share of the cost.

use crate::error::Result;
use crate::money::to_usd;
use crate::store::Filter;
use crate::wire::{ModelEntry, ModelMetrics, ModelsInput, ModelsOutput};

use super::{
    fit_items, json_len, page_args, pagination, percent, period, resolve_window, Dashboard,
};

impl Dashboard {
    pub fn models(&self, input: ModelsInput) -> Result<ModelsOutput> {
        let w = resolve_window(&input.window_args(), self.now())?;
        let (limit, offset) = page_args(input.limit, input.offset, 50, 500)?;
        let f = Filter {
            agent: input.agent_id.clone(),
            model: None,
        };
        let (mut rows, pricing) = self
            .store
            .read(|c| Ok((c.model_totals(&w, &f)?, c.pricing(&w, &f)?)))?;
        let priced: std::collections::HashMap<&str, &crate::store::Pricing> =
            pricing.iter().map(|p| (p.model.as_str(), p)).collect();
        rows.sort_by(|a, b| {
            b.totals
                .cost
                .cmp(&a.totals.cost)
                .then_with(|| a.name.cmp(&b.name))
        });
        let total_cost: i64 = rows.iter().map(|m| m.totals.cost).sum();
        let total_calls: i64 = rows.iter().map(|m| m.totals.calls).sum();
        let total = rows.len() as u64;
        let mut models: Vec<ModelEntry> = rows
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|m| {
                let t = &m.totals;
                let distribution = if total_cost > 0 {
                    t.cost as f64 / total_cost as f64 * 100.0
                } else {
                    t.calls as f64 / total_calls as f64 * 100.0
                };
                ModelEntry {
                    name: m.name.clone(),
                    metrics: ModelMetrics {
                        total_cost: to_usd(t.cost),
                        total_calls: t.calls as u64,
                        total_tokens: t.tokens as u64,
                        average_cost_per_call: (t.calls > 0)
                            .then(|| to_usd(t.cost) / t.calls as f64),
                        success_rate: percent((t.calls - t.errors) as f64, t.calls as f64),
                        avg_latency_ms: (t.timed > 0).then(|| t.duration_sum / t.timed as f64),
                        estimated_cost: to_usd(
                            priced.get(m.name.as_str()).map_or(0, |p| p.estimated_cost),
                        ),
                        unpriced_calls: priced
                            .get(m.name.as_str())
                            .map_or(0, |p| p.unpriced_calls as u64),
                    },
                    distribution,
                }
            })
            .collect();
        let mut out = ModelsOutput {
            period: period(&w),
            models: Vec::new(),
            pagination: pagination(total, limit, offset, 0),
        };
        fit_items(&mut models, json_len(&out));
        out.pagination = pagination(total, limit, offset, models.len());
        out.models = models;
        Ok(out)
    }
}
