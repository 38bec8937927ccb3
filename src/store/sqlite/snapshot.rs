//! `Snapshot` on a pooled SQLite reader: each question is one of the query modules' functions,
//! all run inside the reader's one read transaction.

use crate::cancel::Cancel;
use crate::error::Result;
use crate::money::Nanos;
use crate::store::{
    AgentRun, AgentTotals, Agents, Budget, Changes, ExecutionFilter, ExecutionRow, Filter,
    GroupKey, ModelTotals, Pricing, Snapshot, Totals,
};
use crate::time::{Millis, Window};

use super::{budgets, pricing, query, series, Reader};

impl Snapshot for Reader<'_> {
    fn totals(&self, w: &Window, f: &Filter) -> Result<Totals> {
        query::totals(self, w, f)
    }

    fn p95_duration(&self, w: &Window, f: &Filter) -> Result<Option<f64>> {
        query::p95_duration(self, w, f)
    }

    fn agent_totals(&self, w: &Window, f: &Filter) -> Result<Vec<AgentTotals>> {
        query::agent_totals(self, w, f)
    }

    fn model_totals(&self, w: &Window, f: &Filter) -> Result<Vec<ModelTotals>> {
        query::model_totals(self, w, f)
    }

    fn grouped(
        &self,
        w: &Window,
        f: &Filter,
        unit: Millis,
        key: GroupKey,
    ) -> Result<Vec<(i64, String, Totals)>> {
        query::grouped(self, w, f, unit, key)
    }

    fn executions(
        &self,
        w: &Window,
        ef: &ExecutionFilter,
        limit: u32,
        offset: u64,
        cancel: &Cancel,
    ) -> Result<(i64, Vec<ExecutionRow>)> {
        query::executions(self, w, ef, limit, offset, cancel)
    }

    fn series(&self, range: &Window, agents: &Agents) -> Result<Vec<AgentRun>> {
        series::series(self, range, agents)
    }

    fn latest_gen(&self) -> Result<i64> {
        series::latest_gen(self)
    }

    fn changes_since(&self, seen: i64, limit: usize) -> Result<Changes> {
        series::changes_since(self, seen, limit)
    }

    fn agent_ids(&self) -> Result<Vec<String>> {
        let mut stmt = self.prepare_cached("SELECT id FROM agents ORDER BY id")?;
        let ids = stmt.query_map([], |r| r.get(0))?;
        Ok(ids.collect::<rusqlite::Result<_>>()?)
    }

    fn budgets(&self, scope: Option<&str>) -> Result<Vec<Budget>> {
        match scope {
            Some(s) => Ok(budgets::get(self, s)?.into_iter().collect()),
            None => budgets::list(self),
        }
    }

    fn cost_between(&self, scope: &str, start: Millis, end: Millis) -> Result<Nanos> {
        budgets::cost_between(self, scope, start, end)
    }

    fn execution_count(&self) -> Result<i64> {
        query::execution_count(self)
    }

    fn first_agent_ids(&self, n: u32) -> Result<Vec<String>> {
        query::first_agent_ids(self, n)
    }

    fn pricing(&self, w: &Window, f: &Filter) -> Result<Vec<Pricing>> {
        pricing::pricing(self, w, f)
    }
}
