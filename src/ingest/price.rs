//! The price table ingest uses for records without a cost: the built-in table (derived from
//! LiteLLM's, `prices`), with the user's overrides file merged over it when one is given
//! (`--prices FILE`, `DASHBOARD_MCP_PRICES`). Set once at start, before the first record.

use std::sync::OnceLock;

use crate::money::Nanos;
use crate::prices::{PriceTable, Tokens};
use crate::store::Priceable;

static ACTIVE: OnceLock<PriceTable> = OnceLock::new();

/// Use the built-in table with `overrides` (LiteLLM's JSON format) merged over it. Only the
/// first call takes effect (the table cannot change under a running server).
pub fn set_overrides(overrides: PriceTable) {
    let _ = ACTIVE.set(PriceTable::builtin().merged(&overrides));
}

/// The table in use.
pub fn table() -> &'static PriceTable {
    ACTIVE.get().unwrap_or_else(|| PriceTable::builtin())
}

/// The cost of `tokens` of `model`, or `None` when the table has no price for it.
pub fn estimate(model: &str, tokens: &Tokens) -> Option<Nanos> {
    table().cost_nanos(model, tokens)
}

/// The price of a stored execution's tokens with the table in use (`Store::reprice`), within
/// the cap ingest holds a record's cost to (a larger one is left unpriced rather than stored).
pub fn pricer(p: &Priceable<'_>) -> Option<Nanos> {
    estimate(p.model, &tokens_of(p)).filter(|n| *n <= super::MAX_COST_NANOS)
}

/// A stored execution's tokens as the price table prices them (the cache writes split into
/// their 5-minute and 1-hour parts).
pub fn tokens_of(p: &Priceable<'_>) -> Tokens {
    Tokens {
        input: p.prompt,
        output: p.completion,
        cache_read: p.cache_read,
        cache_write_5m: p.cache_write - p.cache_write_1h,
        cache_write_1h: p.cache_write_1h,
    }
}
