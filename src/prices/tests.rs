//! Every expected value is worked out by hand in the comment next to it: tokens × USD per token =
//! USD, × 1e9 = nano-dollars.

use super::matching::{base_form, family_form};
use super::price::atto_from_f64;
use super::*;

fn table(json: &str) -> PriceTable {
    PriceTable::from_litellm_json(json).expect("test table parses")
}

fn tokens(input: i64, output: i64, cache_read: i64, w5m: i64, w1h: i64) -> Tokens {
    Tokens {
        input,
        output,
        cache_read,
        cache_write_5m: w5m,
        cache_write_1h: w1h,
    }
}

#[test]
fn builtin_table_has_every_derived_model_sorted_and_priced() {
    let t = PriceTable::builtin();
    // scripts/prices/derive.py on LiteLLM 1.110.2 reported 3551 models.
    assert_eq!(t.len(), 3551);
    assert!(t.lookup("_source").is_none(), "the note is not a model");
    let keys: Vec<&str> = t.entries().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 3551);
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "entries sorted by key"
    );
    assert!(t
        .entries()
        .all(|(_, p)| p.input.is_some() || p.output.is_some()));
}

#[test]
fn builtin_sonnet_4_5_input_output_cache_read() {
    let t = PriceTable::builtin();
    // 1,000 input tokens of claude-sonnet-4-5 at $3/M = $0.003 = 3,000,000 nanos.
    assert_eq!(
        t.cost_nanos("claude-sonnet-4-5", &tokens(1_000, 0, 0, 0, 0)),
        Some(3_000_000)
    );
    // 2,000 output tokens at $15/M = $0.03 = 30,000,000 nanos.
    assert_eq!(
        t.cost_nanos("claude-sonnet-4-5", &tokens(0, 2_000, 0, 0, 0)),
        Some(30_000_000)
    );
    // 10,000 cache-read tokens at $0.30/M = $0.003 = 3,000,000 nanos.
    assert_eq!(
        t.cost_nanos("claude-sonnet-4-5", &tokens(0, 0, 10_000, 0, 0)),
        Some(3_000_000)
    );
}

#[test]
fn cache_writes_split_between_5m_and_1h_prices() {
    let t = PriceTable::builtin();
    // claude-sonnet-4-5 (anthropic): input $3/M, output $15/M, cache read $0.30/M, 5-minute
    // write $3.75/M, 1-hour write $6/M.
    //   input      100 × 3e-6    = $0.0003  =    300,000
    //   output     200 × 1.5e-5  = $0.003   =  3,000,000
    //   read     1,000 × 3e-7    = $0.0003  =    300,000
    //   write 5m 2,000 × 3.75e-6 = $0.0075  =  7,500,000
    //   write 1h 4,000 × 6e-6    = $0.024   = 24,000,000
    //   total                               = 35,100,000 nanos
    let t5 = tokens(100, 200, 1_000, 2_000, 4_000);
    assert_eq!(t.cost_nanos("claude-sonnet-4-5", &t5), Some(35_100_000));
    // The same 6,000 written tokens all with a 5-minute TTL: 6,000 × 3.75e-6 = $0.0225, so
    // 300,000 + 3,000,000 + 300,000 + 22,500,000 = 26,100,000 nanos.
    let all_5m = tokens(100, 200, 1_000, 6_000, 0);
    assert_eq!(t.cost_nanos("claude-sonnet-4-5", &all_5m), Some(26_100_000));
}

#[test]
fn above_200k_prices_every_token_type_of_the_call_at_its_tier() {
    let t = PriceTable::builtin();
    // gemini-2.5-pro: input $1.25/M ($2.50/M above 200k), output $10/M ($15/M), cache read
    // $0.125/M ($0.25/M), cache write: none below (→ input price), $0.25/M above.
    //
    // Prompt 150,000 input + 60,000 read = 210,000 > 200,000: the whole call at the tier.
    //   input 150,000 × 2.5e-6  = $0.375 = 375,000,000
    //   read   60,000 × 2.5e-7  = $0.015 =  15,000,000
    //   output  1,000 × 1.5e-5  = $0.015 =  15,000,000
    //   total                            = 405,000,000 nanos
    // (ccusage would price this call at the base prices, no single type having 200k tokens:
    // 150,000 × 1.25e-6 + 60,000 × 1.25e-7 + 1,000 × 1e-5 = $0.205.)
    let above = tokens(150_000, 1_000, 60_000, 0, 0);
    assert_eq!(t.cost_nanos("gemini-2.5-pro", &above), Some(405_000_000));
    // Prompt exactly 200,000 (140,000 + 60,000) is not above: base prices.
    //   input 140,000 × 1.25e-6 = $0.175  = 175,000,000
    //   read   60,000 × 1.25e-7 = $0.0075 =   7,500,000
    //   output  1,000 × 1e-5    = $0.01   =  10,000,000
    //   total                             = 192,500,000 nanos
    let at = tokens(140_000, 1_000, 60_000, 0, 0);
    assert_eq!(t.cost_nanos("gemini-2.5-pro", &at), Some(192_500_000));
    // Cache writes count in the prompt: 199,000 input + 1,001 written = 200,001 > 200,000.
    //   input 199,000 × 2.5e-6 = $0.4975     = 497,500,000
    //   write   1,001 × 2.5e-7 = $0.00025025 =     250,250
    //   total                               = 497,750,250 nanos
    let writes = tokens(199_000, 0, 0, 1_001, 0);
    assert_eq!(t.cost_nanos("gemini-2.5-pro", &writes), Some(497_750_250));
    // vertex_ai/claude-sonnet-4-5 has a tier for every type, 1-hour writes included: input
    // $6/M, output $22.50/M, read $0.60/M, 5-minute write $7.50/M, 1-hour write $12/M.
    // Prompt 190,000 + 1,000 + 6,000 + 4,000 = 201,000 > 200,000.
    //   input 190,000 × 6e-6    = $1.14   = 1,140,000,000
    //   output  1,000 × 2.25e-5 = $0.0225 =    22,500,000
    //   read    1,000 × 6e-7    = $0.0006 =       600,000
    //   w5m     6,000 × 7.5e-6  = $0.045  =    45,000,000
    //   w1h     4,000 × 1.2e-5  = $0.048  =    48,000,000
    //   total                             = 1,256,100,000 nanos
    let split = tokens(190_000, 1_000, 1_000, 6_000, 4_000);
    assert_eq!(
        t.cost_nanos("vertex_ai/claude-sonnet-4-5", &split),
        Some(1_256_100_000)
    );
}

#[test]
fn tier_falls_back_per_type_to_base_then_to_input() {
    // Only the input price has a tier; no cache read price; 5-minute and 1-hour writes listed.
    let t = table(
        r#"{"t": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                  "input_cost_per_token_above_200k_tokens": 2e-6,
                  "cache_creation_input_token_cost": 1.25e-6,
                  "cache_creation_input_token_cost_above_1hr": 2e-6}}"#,
    );
    // Prompt 200,000 + 1,000 + 1,000 + 1,000 = 203,000 > 200,000: tier.
    //   input  200,000 × 2e-6 (tier)            = $0.4     = 400,000,000
    //   output   1,000 × 2e-6 (no tier: base)   = $0.002   =   2,000,000
    //   read     1,000 × 2e-6 (none: tier input)= $0.002   =   2,000,000
    //   w5m      1,000 × 1.25e-6 (no tier: base)= $0.00125 =   1,250,000
    //   w1h      1,000 × 2e-6 (no tier: base)   = $0.002   =   2,000,000
    //   total                                              = 407,250,000 nanos
    let call = tokens(200_000, 1_000, 1_000, 1_000, 1_000);
    assert_eq!(t.cost_nanos("t", &call), Some(407_250_000));
    let r = t.lookup("t").unwrap().1.rates(&call);
    assert!(r.above_200k);
    assert_eq!(r.cache_read, 2_000_000_000_000); // 2e-6 USD = 2e12 atto-dollars
}

#[test]
fn missing_cache_prices_fall_back_to_input_and_5m_price() {
    let t = table(
        r#"{"plain": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
            "w5m": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                    "cache_creation_input_token_cost": 1.25e-6}}"#,
    );
    // No cache prices: read, 5m and 1h writes all at the input price.
    // (1,000 + 1,000 + 1,000 + 1,000) × 1e-6 = $0.004 = 4,000,000 nanos.
    assert_eq!(
        t.cost_nanos("plain", &tokens(1_000, 0, 1_000, 1_000, 1_000)),
        Some(4_000_000)
    );
    // No 1-hour price but a 5-minute one: twice the input price (Anthropic's rule).
    // 1,000 × 2e-6 = $0.002 = 2,000,000 nanos.
    assert_eq!(
        t.cost_nanos("w5m", &tokens(0, 0, 0, 0, 1_000)),
        Some(2_000_000)
    );
}

#[test]
fn xai_tier_starts_at_exactly_200k() {
    let t = table(
        r#"{"grok-x": {"litellm_provider": "xai", "input_cost_per_token": 2e-6,
                       "input_cost_per_token_above_200k_tokens": 4e-6},
            "other-x": {"litellm_provider": "other", "input_cost_per_token": 2e-6,
                        "input_cost_per_token_above_200k_tokens": 4e-6}}"#,
    );
    let at = tokens(200_000, 0, 0, 0, 0);
    // xAI bills the tier once the prompt reaches 200k: 200,000 × 4e-6 = $0.8 = 800,000,000.
    assert_eq!(t.cost_nanos("grok-x", &at), Some(800_000_000));
    // Others only above it: 200,000 × 2e-6 = $0.4 = 400,000,000.
    assert_eq!(t.cost_nanos("other-x", &at), Some(400_000_000));
}

#[test]
fn rounds_once_per_call_to_the_nearest_nano_half_up() {
    let t = table(
        r#"{"half": {"input_cost_per_token": 1.5e-9, "output_cost_per_token": 1.4e-9},
            "quarter": {"input_cost_per_token": 2.5e-10}}"#,
    );
    // 1 input × 1.5e-9 = 1.5 nanos → 2 (half up).
    assert_eq!(t.cost_nanos("half", &tokens(1, 0, 0, 0, 0)), Some(2));
    // 1 output × 1.4e-9 = 1.4 nanos → 1.
    assert_eq!(t.cost_nanos("half", &tokens(0, 1, 0, 0, 0)), Some(1));
    // 3 input × 1.5e-9 = 4.5 → 5.
    assert_eq!(t.cost_nanos("half", &tokens(3, 0, 0, 0, 0)), Some(5));
    // Once per call: 1 input + 2 output = 1.5 + 2.8 = 4.3 → 4, where rounding each type
    // (2 + 3) would give 5.
    assert_eq!(t.cost_nanos("half", &tokens(1, 2, 0, 0, 0)), Some(4));
    // 1 × 2.5e-10 = 0.25 nanos → 0; 2 × = 0.5 → 1; 6 × = 1.5 → 2.
    assert_eq!(t.cost_nanos("quarter", &tokens(1, 0, 0, 0, 0)), Some(0));
    assert_eq!(t.cost_nanos("quarter", &tokens(2, 0, 0, 0, 0)), Some(1));
    assert_eq!(t.cost_nanos("quarter", &tokens(6, 0, 0, 0, 0)), Some(2));
    // A negative count is priced as zero: 3 × 1.5e-9 + 0 = 4.5 → 5.
    assert_eq!(t.cost_nanos("half", &tokens(3, -7, 0, 0, 0)), Some(5));
    // A missing input price bills input at 0 (LiteLLM's default): 1,000 × 0 = 0.
    assert_eq!(t.cost_nanos("quarter", &tokens(0, 1_000, 0, 0, 0)), Some(0));
}

#[test]
fn overrides_win_per_model_key() {
    let builtin = PriceTable::builtin();
    let overrides = table(
        r#"{"claude-sonnet-4-5": {"litellm_provider": "anthropic",
                                  "input_cost_per_token": 1e-6, "output_cost_per_token": 5e-6},
            "my-local-llama": {"input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7}}"#,
    );
    let merged = builtin.merged(&overrides);
    // The override's input price: 1,000 × 1e-6 = $0.001 = 1,000,000 nanos (built-in: 3,000,000).
    let input = tokens(1_000, 0, 0, 0, 0);
    assert_eq!(
        merged.cost_nanos("claude-sonnet-4-5", &input),
        Some(1_000_000)
    );
    // The whole entry is replaced: no cache read price in the override, so 1,000 reads at its
    // input price 1e-6 = 1,000,000 nanos (not the built-in $0.30/M = 300,000).
    assert_eq!(
        merged.cost_nanos("claude-sonnet-4-5", &tokens(0, 0, 1_000, 0, 0)),
        Some(1_000_000)
    );
    // Matching reaches the override too: a dated name of the family.
    assert_eq!(
        merged.lookup("anthropic/claude-sonnet-4.5").map(|(k, _)| k),
        Some("claude-sonnet-4-5")
    );
    // A new model: 1,000 × 1e-7 + 1,000 × 2e-7 = $0.0003 = 300,000 nanos.
    assert_eq!(builtin.cost_nanos("my-local-llama", &input), None);
    assert_eq!(
        merged.cost_nanos("my-local-llama", &tokens(1_000, 1_000, 0, 0, 0)),
        Some(300_000)
    );
    // Untouched models keep the built-in price: gpt-5 1,000 × 1.25e-6 = 1,250,000 nanos.
    assert_eq!(merged.cost_nanos("gpt-5", &input), Some(1_250_000));
    assert_eq!(merged.len(), builtin.len() + 1);
    assert_eq!(
        builtin.changed_models(&merged),
        vec![
            "claude-sonnet-4-5".to_string(),
            "my-local-llama".to_string()
        ]
    );
}

#[test]
fn changed_models_lists_changed_new_and_removed_keys() {
    let old = table(
        r#"{"a": {"input_cost_per_token": 1e-6},
            "b": {"input_cost_per_token": 2e-6},
            "c": {"input_cost_per_token": 3e-6}}"#,
    );
    let new = table(
        r#"{"a": {"input_cost_per_token": 0.000001},
            "b": {"input_cost_per_token": 2e-6, "cache_read_input_token_cost": 2e-7},
            "d": {"input_cost_per_token": 4e-6}}"#,
    );
    // a: same price written differently; b: a new cache price; c removed; d new.
    let expected: Vec<String> = ["b", "c", "d"].iter().map(|s| s.to_string()).collect();
    assert_eq!(old.changed_models(&new), expected);
    assert_eq!(new.changed_models(&old), expected);
    assert!(old.changed_models(&old.clone()).is_empty());
}

#[test]
fn malformed_overrides_name_the_model_and_the_field() {
    let err = PriceTable::from_litellm_json(
        r#"{"fine": {"input_cost_per_token": 1e-6},
            "my-model": {"input_cost_per_token": "cheap"}}"#,
    )
    .unwrap_err();
    assert!(err.contains("\"my-model\""), "{err}");
    assert!(err.contains("\"input_cost_per_token\""), "{err}");

    let err = PriceTable::from_litellm_json(
        r#"{"m": {"input_cost_per_token": 1e-6, "cache_read_input_token_cost": -1e-7}}"#,
    )
    .unwrap_err();
    assert!(err.contains("\"m\""), "{err}");
    assert!(err.contains("\"cache_read_input_token_cost\""), "{err}");

    // More than 18.4 USD per token does not fit atto-dollars in a u64.
    let err =
        PriceTable::from_litellm_json(r#"{"big": {"output_cost_per_token": 100}}"#).unwrap_err();
    assert!(
        err.contains("\"big\"") && err.contains("\"output_cost_per_token\""),
        "{err}"
    );

    let err = PriceTable::from_litellm_json(
        r#"{"p": {"litellm_provider": 5, "input_cost_per_token": 1e-6}}"#,
    )
    .unwrap_err();
    assert!(
        err.contains("\"p\"") && err.contains("\"litellm_provider\""),
        "{err}"
    );

    let err = PriceTable::from_litellm_json(r#"{"x": 3}"#).unwrap_err();
    assert!(err.contains("\"x\""), "{err}");
    assert!(PriceTable::from_litellm_json("[1, 2]").is_err());
    assert!(PriceTable::from_litellm_json("{not json").is_err());
}

#[test]
fn entries_not_priced_per_token_are_left_out() {
    let t = table(
        r#"{"_note": "ignored",
            "emb": {"mode": "embedding", "input_cost_per_token": "not even checked"},
            "img": {"mode": "image_generation", "output_cost_per_image": 0.04},
            "chat": {"mode": "chat", "input_cost_per_token": 1e-6},
            "resp": {"mode": "responses", "output_cost_per_token": 1e-6},
            "nomode": {"input_cost_per_token": 1e-6, "max_tokens": 8192}}"#,
    );
    let keys: Vec<&str> = t.entries().map(|(k, _)| k).collect();
    assert_eq!(keys, ["chat", "nomode", "resp"]);
}

#[test]
fn real_model_names_find_their_price() {
    let t = PriceTable::builtin();
    // (name, the key it must find, cost of 100,000 input tokens = the input price per M / 10,
    // e.g. $3/M × 0.1M = $0.30 = 300,000,000 nanos; 100k stays below the 200k tier).
    let cases: &[(&str, &str, i64)] = &[
        // LiteLLM 1.110.2 lists no Anthropic entry for these retired snapshots; Bedrock's has
        // Anthropic's prices: $3/M for Sonnet 4 and 3.5, $15/M for Opus 4.1.
        (
            "claude-sonnet-4-20250514",
            "anthropic.claude-sonnet-4-20250514-v1:0",
            300_000_000,
        ),
        (
            "claude-opus-4-1-20250805",
            "anthropic.claude-opus-4-1-20250805-v1:0",
            1_500_000_000,
        ),
        (
            "anthropic/claude-3-5-sonnet-20241022",
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            300_000_000,
        ),
        // No `-latest` key: the family's entry with a cache price, Bedrock's at $0.80/M (Vertex's
        // `vertex_ai/claude-3-5-haiku`, shorter, has no cache read price).
        (
            "claude-3-5-haiku-latest",
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            80_000_000,
        ),
        ("gpt-5", "gpt-5", 125_000_000),
        ("gpt-5-codex", "gpt-5-codex", 125_000_000),
        ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06", 250_000_000),
        // A dated snapshot keeps its own price ($5/M), not gpt-4o's ($2.50/M).
        ("openai/gpt-4o-2024-05-13", "gpt-4o-2024-05-13", 500_000_000),
        ("openai/gpt-4.1-mini", "gpt-4.1-mini", 40_000_000),
        (
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            300_000_000,
        ),
        ("gemini-2.5-pro", "gemini-2.5-pro", 125_000_000),
        (
            "gemini/gemini-2.5-pro",
            "gemini/gemini-2.5-pro",
            125_000_000,
        ),
        // Anthropic's own entry beats the gateways' `…/claude-sonnet-4.5`.
        (
            "openrouter/anthropic/claude-sonnet-4.5",
            "claude-sonnet-4-5",
            300_000_000,
        ),
        (
            "claude-sonnet-4-5-20250929",
            "claude-sonnet-4-5-20250929",
            300_000_000,
        ),
        ("CLAUDE-SONNET-4-5", "claude-sonnet-4-5", 300_000_000),
    ];
    let tenth = tokens(100_000, 0, 0, 0, 0);
    for &(name, key, nanos) in cases {
        let found = t.lookup(name).map(|(k, _)| k);
        assert_eq!(found, Some(key), "{name}");
        assert_eq!(t.cost_nanos(name, &tenth), Some(nanos), "{name}");
    }
    assert!(t.lookup("my-local-llama").is_none());
    assert_eq!(t.cost_nanos("my-local-llama", &tenth), None);
}

#[test]
fn normal_forms_drop_prefixes_versions_and_dates() {
    let b = base_form("bedrock/us-gov-west-1/anthropic.claude-3-7-sonnet-20250219-v1:0");
    assert_eq!(b, "claude-3-7-sonnet-20250219");
    assert_eq!(family_form(&b), "claude-3-7-sonnet");
    assert_eq!(
        base_form("us.anthropic.claude-sonnet-4-6"),
        "claude-sonnet-4-6"
    );
    assert_eq!(base_form("openai.gpt-oss-120b-1:0"), "gpt-oss-120b");
    assert_eq!(base_form("OpenAI/GPT-4.1-mini"), "gpt-4.1-mini");
    assert_eq!(family_form("gpt-4.1-mini"), "gpt-4-1-mini");
    assert_eq!(family_form("gpt-4o-2024-08-06"), "gpt-4o");
    assert_eq!(
        family_form("claude-3-5-sonnet@20240620"),
        "claude-3-5-sonnet"
    );
    assert_eq!(family_form("claude-haiku-5-5@default"), "claude-haiku-5-5");
    assert_eq!(family_form("claude-3-5-haiku-latest"), "claude-3-5-haiku");
    // A number that is not a 20xx date stays.
    assert_eq!(family_form("model-12345678"), "model-12345678");
    // Non-ASCII names are cut only at ASCII separators (no panic mid-character).
    assert_eq!(family_form("modèle-été-20250101"), "modèle-été");
    assert_eq!(family_form("é1.5é-2025-01-01"), "é1-5é");
    assert_eq!(family_form("ééééééééééé"), "ééééééééééé");
    assert!(PriceTable::builtin().lookup("модель-日本語").is_none());
}

#[test]
fn matching_prefers_first_party_then_cache_price_then_shortest() {
    let t = table(
        r#"{"gw/foo-1": {"litellm_provider": "gateway", "input_cost_per_token": 1e-6},
            "longer-gateway/foo-1": {"litellm_provider": "gateway2", "input_cost_per_token": 2e-6,
                                     "cache_read_input_token_cost": 1e-7},
            "foo-1-20250101": {"litellm_provider": "anthropic", "input_cost_per_token": 3e-6},
            "bar-2": {"litellm_provider": "x", "input_cost_per_token": 1e-6},
            "zz/bar-2": {"litellm_provider": "y", "input_cost_per_token": 1e-6}}"#,
    );
    // foo-1: the base form hits only gateways; the family form the maker's dated entry, which wins.
    assert_eq!(t.lookup("foo-1").map(|(k, _)| k), Some("foo-1-20250101"));
    // Without the maker's entry, the gateway with a cache price beats the shorter one without.
    let gateways = table(
        r#"{"gw/foo-1": {"litellm_provider": "gateway", "input_cost_per_token": 1e-6},
            "longer-gateway/foo-1": {"litellm_provider": "gateway2", "input_cost_per_token": 2e-6,
                                     "cache_read_input_token_cost": 1e-7}}"#,
    );
    assert_eq!(
        gateways.lookup("vendor/foo-1").map(|(k, _)| k),
        Some("longer-gateway/foo-1")
    );
    // Equal otherwise: the shortest key.
    assert_eq!(t.lookup("p/bar-2").map(|(k, _)| k), Some("bar-2"));
}

#[test]
fn prices_convert_exactly_to_atto_dollars() {
    // 3e-6 USD = 3e12 atto-dollars.
    assert_eq!(atto_from_f64(3e-6), Ok(3_000_000_000_000));
    // 3.75e-6 = 3.75e12.
    assert_eq!(atto_from_f64(3.75e-6), Ok(3_750_000_000_000));
    // LiteLLM's float artefacts: 1.0000000000000001e-07 → 1e-7 exactly (the 19th decimal, 1, is
    // dropped); 2.9999900000000002e-06 → 2.99999e-6.
    assert_eq!(atto_from_f64(1.0000000000000001e-07), Ok(100_000_000_000));
    assert_eq!(atto_from_f64(2.9999900000000002e-06), Ok(2_999_990_000_000));
    // Below one atto-dollar: 4e-19 → 0, 5e-19 → 1 (half up).
    assert_eq!(atto_from_f64(4e-19), Ok(0));
    assert_eq!(atto_from_f64(5e-19), Ok(1));
    assert_eq!(atto_from_f64(1.5), Ok(1_500_000_000_000_000_000));
    assert!(atto_from_f64(100.0).is_err());
    assert!(atto_from_f64(-1e-6).is_err());
    // Display: 3e12 atto-dollars per token = $3 per million tokens.
    assert_eq!(usd_per_mtok(3_000_000_000_000), 3.0);
    assert_eq!(usd_per_mtok(125_000_000_000), 0.125);
    let sonnet = PriceTable::builtin().lookup("claude-sonnet-4-5").unwrap().1;
    assert_eq!(sonnet.cache_write_1h_usd_per_mtok(), Some(6.0));
    assert_eq!(sonnet.cache_read_usd_per_mtok(), Some(0.3));
    assert_eq!(sonnet.input_above_200k_usd_per_mtok(), None);
}
