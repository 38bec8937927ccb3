//! The built-in price table: per-token prices of LLM models, derived from LiteLLM's
//! `model_prices_and_context_window.json` (MIT, see LICENSE-litellm) by
//! scripts/prices/derive.py into litellm.json, with user overrides in the same format.
//!
//! - price.rs: a model's prices as exact integers (atto-dollars per token) and the cost of one
//!   call in nano-dollars: the above-200k tier rule and the fallbacks for missing cache prices.
//! - matching.rs: finding a table key for the model name an agent logged.

mod matching;
mod price;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use serde_json::Value;

use crate::money::Nanos;

pub use price::{usd_per_mtok, ModelPrice, Rates, Tokens, TIER_THRESHOLD_TOKENS};

/// The checked-in table (scripts/prices/derive.py writes it).
const BUILTIN_JSON: &str = include_str!("litellm.json");

/// LiteLLM `mode`s kept: the ones priced per token of a conversation. An entry without a mode is
/// kept too (an overrides file need not say).
const MODES: &[&str] = &["chat", "completion", "responses"];

type Field = fn(&mut ModelPrice) -> &mut Option<u64>;

/// LiteLLM's field names of the prices read, and where each goes.
const PRICE_FIELDS: &[(&str, Field)] = &[
    ("input_cost_per_token", |p| &mut p.input),
    ("output_cost_per_token", |p| &mut p.output),
    ("cache_read_input_token_cost", |p| &mut p.cache_read),
    ("cache_creation_input_token_cost", |p| &mut p.cache_write_5m),
    ("cache_creation_input_token_cost_above_1hr", |p| {
        &mut p.cache_write_1h
    }),
    ("input_cost_per_token_above_200k_tokens", |p| {
        &mut p.input_above_200k
    }),
    ("output_cost_per_token_above_200k_tokens", |p| {
        &mut p.output_above_200k
    }),
    ("cache_read_input_token_cost_above_200k_tokens", |p| {
        &mut p.cache_read_above_200k
    }),
    ("cache_creation_input_token_cost_above_200k_tokens", |p| {
        &mut p.cache_write_5m_above_200k
    }),
    (
        "cache_creation_input_token_cost_above_1hr_above_200k_tokens",
        |p| &mut p.cache_write_1h_above_200k,
    ),
];

/// Model prices by LiteLLM key, with the indexes of the tolerant name matching.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
    /// Base form → the preferred key with that base form (matching.rs).
    by_base: HashMap<String, String>,
    /// Family form → the preferred key with that family form.
    by_family: HashMap<String, String>,
}

impl PriceTable {
    /// The table built into the binary (src/prices/litellm.json), parsed once.
    pub fn builtin() -> &'static PriceTable {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            PriceTable::from_litellm_json(BUILTIN_JSON)
                .expect("src/prices/litellm.json is checked by the prices tests")
        })
    }

    /// A table from text in the format of LiteLLM's model_prices_and_context_window.json, the
    /// whole file or any subset of it (an overrides file). Entries that are not priced per token
    /// (no `input_cost_per_token` nor `output_cost_per_token`, or a `mode` other than chat,
    /// completion or responses) are left out, as are keys starting with `_` (notes such as
    /// `_source`). Fields other than the prices read are ignored. A price that is not a
    /// non-negative number (or null) is an error naming the model and the field.
    pub fn from_litellm_json(text: &str) -> Result<PriceTable, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("price table is not JSON: {e}"))?;
        let Value::Object(entries) = value else {
            return Err("price table: expected a JSON object of models".to_string());
        };
        let mut prices = BTreeMap::new();
        for (model, entry) in &entries {
            if model.starts_with('_') {
                continue;
            }
            let Value::Object(fields) = entry else {
                return Err(format!("model {model:?}: expected an object of prices"));
            };
            if let Some(mode) = fields.get("mode").filter(|m| !m.is_null()) {
                if !mode.as_str().is_some_and(|m| MODES.contains(&m)) {
                    continue;
                }
            }
            let priced = ["input_cost_per_token", "output_cost_per_token"]
                .iter()
                .any(|f| fields.get(*f).is_some_and(|v| !v.is_null()));
            if !priced {
                continue;
            }
            let mut price = ModelPrice::default();
            match fields.get("litellm_provider") {
                None | Some(Value::Null) => {}
                Some(Value::String(p)) => price.provider = Some(p.clone()),
                Some(other) => {
                    let field = "litellm_provider";
                    return Err(format!(
                        "model {model:?}: field {field:?}: expected a string, got {other}"
                    ));
                }
            }
            for (name, slot) in PRICE_FIELDS {
                let parsed = match fields.get(*name) {
                    None | Some(Value::Null) => None,
                    Some(Value::Number(n)) => Some(
                        n.as_f64()
                            .ok_or_else(|| format!("{n} is not a number"))
                            .and_then(price::atto_from_f64),
                    ),
                    Some(other) => Some(Err(format!(
                        "expected a non-negative number of USD per token, got {other}"
                    ))),
                };
                if let Some(parsed) = parsed {
                    *slot(&mut price) =
                        Some(parsed.map_err(|e| format!("model {model:?}: field {name:?}: {e}"))?);
                }
            }
            prices.insert(model.clone(), price);
        }
        Ok(PriceTable::from_prices(prices))
    }

    /// A table of these prices, with its matching indexes.
    pub fn from_prices(prices: BTreeMap<String, ModelPrice>) -> PriceTable {
        let mut by_base: HashMap<String, String> = HashMap::new();
        let mut by_family: HashMap<String, String> = HashMap::new();
        let better = |candidate: &str, current: Option<&String>| match current {
            None => true,
            Some(cur) => {
                matching::preference(candidate, &prices[candidate])
                    < matching::preference(cur, &prices[cur.as_str()])
            }
        };
        for key in prices.keys() {
            let base = matching::base_form(key);
            let family = matching::family_form(&base);
            if better(key, by_family.get(&family)) {
                by_family.insert(family, key.clone());
            }
            if better(key, by_base.get(&base)) {
                by_base.insert(base, key.clone());
            }
        }
        PriceTable {
            prices,
            by_base,
            by_family,
        }
    }

    /// This table with `overrides` laid over it: an overriding entry replaces the whole entry
    /// of the same key (no field-by-field merge), and new keys are added.
    pub fn merged(&self, overrides: &PriceTable) -> PriceTable {
        let mut prices = self.prices.clone();
        for (key, price) in &overrides.prices {
            prices.insert(key.clone(), price.clone());
        }
        PriceTable::from_prices(prices)
    }

    /// The table key that prices `model`, and its price: the exact key, else the preferred key
    /// of the same base or family form, first-party keys first (see matching.rs). `None` for a
    /// model the table does not know.
    pub fn lookup(&self, model: &str) -> Option<(&str, &ModelPrice)> {
        if let Some((k, p)) = self.prices.get_key_value(model) {
            return Some((k.as_str(), p));
        }
        let base = matching::base_form(model);
        let family = matching::family_form(&base);
        let found = |index: &HashMap<String, String>, form: &str| {
            index
                .get(form)
                .and_then(|key| self.prices.get_key_value(key.as_str()))
                .map(|(k, p)| (k.as_str(), p))
        };
        let by_base = found(&self.by_base, &base);
        let by_family = found(&self.by_family, &family);
        let first_party = |hit: &Option<(&str, &ModelPrice)>| {
            hit.is_some_and(|(_, p)| matching::is_first_party(p.provider()))
        };
        if first_party(&by_base) {
            by_base
        } else if first_party(&by_family) {
            by_family
        } else {
            by_base.or(by_family)
        }
    }

    /// The cost of one call of `model` in nano-dollars; `None` when no price is known for it.
    pub fn cost_nanos(&self, model: &str, t: &Tokens) -> Option<Nanos> {
        self.lookup(model).map(|(_, p)| p.cost_nanos(t))
    }

    /// Every entry, sorted by key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.prices.iter().map(|(k, p)| (k.as_str(), p))
    }

    /// The keys whose entry differs in `newer` (any price or the provider), or that are only in
    /// one of the two tables; sorted.
    pub fn changed_models(&self, newer: &PriceTable) -> Vec<String> {
        let keys: BTreeSet<&String> = self.prices.keys().chain(newer.prices.keys()).collect();
        keys.into_iter()
            .filter(|k| self.prices.get(*k) != newer.prices.get(*k))
            .cloned()
            .collect()
    }

    /// The number of models.
    pub fn len(&self) -> usize {
        self.prices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }
}

#[cfg(test)]
mod tests;
