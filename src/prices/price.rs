//! One model's per-token prices as exact integers, and the cost of one call.
//!
//! Prices are atto-dollars (1e-18 USD) per token. Costs are summed exactly in i128 and rounded
//! once per call to the nearest nano-dollar, half up. No floating point touches a cost.

use crate::money::Nanos;

/// Atto-dollars (1e-18 USD) in one nano-dollar.
const ATTO_PER_NANO: i128 = 1_000_000_000;

/// Prompts above this many tokens are priced at the `_above_200k_tokens` prices.
pub const TIER_THRESHOLD_TOKENS: i128 = 200_000;

/// Tokens of one call, as priced. `input` excludes cache tokens. cache_write_1h is the part of
/// the cache writes made with a 1-hour TTL; cache_write_5m the rest.
///
/// A negative count is priced as zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write_5m: i64,
    pub cache_write_1h: i64,
}

impl Tokens {
    /// The prompt as LiteLLM counts it for the tier threshold: input, cache reads and cache
    /// writes of both TTLs.
    pub fn prompt(&self) -> i128 {
        [
            self.input,
            self.cache_read,
            self.cache_write_5m,
            self.cache_write_1h,
        ]
        .iter()
        .map(|&n| i128::from(n.max(0)))
        .sum()
    }
}

/// One model's prices, in atto-dollars (1e-18 USD) per token, each `None` where LiteLLM has none.
/// The field names follow LiteLLM's: `cache_write_5m` is `cache_creation_input_token_cost`,
/// `cache_write_1h` is `cache_creation_input_token_cost_above_1hr`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelPrice {
    /// `litellm_provider`: who serves the model at these prices (`anthropic`, `bedrock`, …).
    pub provider: Option<String>,
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_write_5m: Option<u64>,
    pub cache_write_1h: Option<u64>,
    pub input_above_200k: Option<u64>,
    pub output_above_200k: Option<u64>,
    pub cache_read_above_200k: Option<u64>,
    pub cache_write_5m_above_200k: Option<u64>,
    pub cache_write_1h_above_200k: Option<u64>,
}

/// The per-token prices one call is charged at, after the tier and the fallbacks, in
/// atto-dollars per token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    /// Whether the call's prompt crossed the 200k threshold (and the model has tier prices).
    pub above_200k: bool,
}

/// Providers whose threshold is inclusive: LiteLLM bills xAI's higher tier once the prompt
/// *reaches* the threshold (`_INCLUSIVE_THRESHOLD_PROVIDERS` in its llm_cost_calc/utils.py).
const INCLUSIVE_THRESHOLD_PROVIDERS: &[&str] = &["xai"];

impl ModelPrice {
    /// Whether the model has above-200k prices. As in LiteLLM, only the input, output, cache read
    /// and cache creation tier prices switch the tier on; a 1-hour write tier price alone does not.
    pub fn has_tier(&self) -> bool {
        self.input_above_200k.is_some()
            || self.output_above_200k.is_some()
            || self.cache_read_above_200k.is_some()
            || self.cache_write_5m_above_200k.is_some()
    }

    /// Whether a call with these tokens is priced at the above-200k prices.
    ///
    /// LiteLLM's rule (`_get_token_base_cost` in litellm_core_utils/llm_cost_calc/utils.py): when
    /// the prompt (input + cache read + cache write tokens) exceeds 200,000 (reaches it, for xAI),
    /// *every* token type of the call is priced at its `_above_200k_tokens` price where one
    /// exists, the whole call, not only the tokens past the threshold.
    ///
    /// ccusage (ryoppippi/ccusage, `tiered_cost` in rust/crates/ccusage/src/cost.rs) differs: it
    /// tiers each token type on its own count, pricing the first 200,000 tokens *of that type*
    /// at the base price and only the tokens past 200,000 at the higher one. So a call of 150k
    /// input + 60k cache read is all base price in ccusage but all tier price here; and a call
    /// of 300k input costs 200k × base + 100k × tier in ccusage, 300k × tier here.
    pub fn above_200k(&self, t: &Tokens) -> bool {
        if !self.has_tier() {
            return false;
        }
        let prompt = t.prompt();
        let inclusive = self
            .provider
            .as_deref()
            .is_some_and(|p| INCLUSIVE_THRESHOLD_PROVIDERS.contains(&p));
        prompt > TIER_THRESHOLD_TOKENS || (inclusive && prompt == TIER_THRESHOLD_TOKENS)
    }

    /// The prices a call with these tokens is charged at: the tier first, then the fallbacks for
    /// missing prices, as LiteLLM resolves them.
    pub fn rates(&self, t: &Tokens) -> Rates {
        let above = self.above_200k(t);
        // Above the threshold each type takes its tier price where there is one, else its base.
        let pick = |base: Option<u64>, tier: Option<u64>| if above { tier.or(base) } else { base };
        // A model with only an output price (or only an input price) charges nothing for the
        // other: LiteLLM's default for a missing token price is 0.
        let input = pick(self.input, self.input_above_200k).unwrap_or(0);
        let output = pick(self.output, self.output_above_200k).unwrap_or(0);
        // Cache read price missing → the input price (of the same tier): a provider that
        // publishes no cache price bills cached tokens as ordinary input.
        let cache_read = pick(self.cache_read, self.cache_read_above_200k).unwrap_or(input);
        // Cache creation (5-minute write) price missing → the input price, for the same reason.
        let cache_write_5m =
            pick(self.cache_write_5m, self.cache_write_5m_above_200k).unwrap_or(input);
        // 1-hour write price missing: where the model lists a 5-minute write price (it has
        // TTL prompt caching, as Anthropic's models do), twice the input price, Anthropic's
        // published rule for 1-hour writes (LiteLLM lacks the 1-hour price of several such
        // entries, e.g. Bedrock's Opus 4.1; ccusage prices them so too); else the 5-minute
        // price resolved above. Above the threshold the 1-hour tier price comes first.
        let cache_write_1h = pick(self.cache_write_1h, self.cache_write_1h_above_200k).unwrap_or(
            if self.cache_write_5m.is_some() {
                input.saturating_mul(2)
            } else {
                cache_write_5m
            },
        );
        Rates {
            input,
            output,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            above_200k: above,
        }
    }

    /// The cost of one call in nano-dollars: the exact sum in atto-dollars, rounded once to the
    /// nearest nano-dollar, half up. Saturates at `i64::MAX` instead of overflowing.
    pub fn cost_nanos(&self, t: &Tokens) -> Nanos {
        let r = self.rates(t);
        let atto = [
            (t.input, r.input),
            (t.output, r.output),
            (t.cache_read, r.cache_read),
            (t.cache_write_5m, r.cache_write_5m),
            (t.cache_write_1h, r.cache_write_1h),
        ]
        .iter()
        .fold(0i128, |sum, &(n, rate)| {
            sum.saturating_add(i128::from(n.max(0)).saturating_mul(i128::from(rate)))
        });
        let nanos = atto.saturating_add(ATTO_PER_NANO / 2) / ATTO_PER_NANO;
        i64::try_from(nanos).unwrap_or(i64::MAX)
    }

    /// `litellm_provider`, if the entry has one.
    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// USD per million input tokens, for display.
    pub fn input_usd_per_mtok(&self) -> Option<f64> {
        self.input.map(usd_per_mtok)
    }
    /// USD per million output tokens, for display.
    pub fn output_usd_per_mtok(&self) -> Option<f64> {
        self.output.map(usd_per_mtok)
    }
    /// USD per million cache-read tokens as LiteLLM lists it (no fallback), for display.
    pub fn cache_read_usd_per_mtok(&self) -> Option<f64> {
        self.cache_read.map(usd_per_mtok)
    }
    /// USD per million 5-minute cache-write tokens as listed (no fallback), for display.
    pub fn cache_write_5m_usd_per_mtok(&self) -> Option<f64> {
        self.cache_write_5m.map(usd_per_mtok)
    }
    /// USD per million 1-hour cache-write tokens as listed (no fallback), for display.
    pub fn cache_write_1h_usd_per_mtok(&self) -> Option<f64> {
        self.cache_write_1h.map(usd_per_mtok)
    }
    /// USD per million input tokens of a prompt above 200k tokens, for display.
    pub fn input_above_200k_usd_per_mtok(&self) -> Option<f64> {
        self.input_above_200k.map(usd_per_mtok)
    }
    /// USD per million output tokens of a prompt above 200k tokens, for display.
    pub fn output_above_200k_usd_per_mtok(&self) -> Option<f64> {
        self.output_above_200k.map(usd_per_mtok)
    }
}

/// Atto-dollars per token as USD per million tokens: the double nearest to the exact decimal
/// (atto × 1e6 / 1e18 = atto / 1e12), for display only.
pub fn usd_per_mtok(atto_per_token: u64) -> f64 {
    const SCALE: u64 = 1_000_000_000_000;
    format!("{}.{:012}", atto_per_token / SCALE, atto_per_token % SCALE)
        .parse()
        .unwrap_or(f64::NAN)
}

/// A price from a JSON number in USD per token to atto-dollars per token. The double is first
/// turned into the shortest decimal that reads back as the same double (Rust's `Display`), which
/// is the decimal LiteLLM wrote (scripts/prices/derive.py checks that for the built-in table);
/// that decimal is then converted exactly, rounding half up past the 18th decimal (LiteLLM has a
/// few float artefacts like `1.0000000000000001e-07`, which so become exactly 1e-7).
/// `Err` says what is wrong with the value.
pub(crate) fn atto_from_f64(v: f64) -> Result<u64, String> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{v} is not a non-negative number"));
    }
    if v == 0.0 {
        return Ok(0);
    }
    let text = format!("{v}");
    let (int_part, frac_part) = text.split_once('.').unwrap_or((&text, ""));
    let too_big = || format!("{v} USD per token is too large");
    let mut atto: u64 = int_part
        .parse::<u64>()
        .ok()
        .and_then(|i| i.checked_mul(1_000_000_000_000_000_000))
        .ok_or_else(too_big)?;
    let digits = frac_part.as_bytes();
    let mut scale: u64 = 100_000_000_000_000_000;
    for &d in digits.iter().take(18) {
        atto = atto
            .checked_add(u64::from(d - b'0') * scale)
            .ok_or_else(too_big)?;
        scale /= 10;
    }
    if digits.get(18).is_some_and(|&d| d >= b'5') {
        atto = atto.checked_add(1).ok_or_else(too_big)?;
    }
    Ok(atto)
}
