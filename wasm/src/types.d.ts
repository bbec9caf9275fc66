/** One chat message. */
export interface Message { role: "system" | "user" | "assistant"; content: string; }

/** A strategy: a built-in name (`synthesize`, `vote`, `diverse`, `rank`, `select`, `sequential`), or a table with its `params` (plugins run only in the native host). */
export type StrategySpec = string | {
  name?: string; plugin?: string; params?: Record<string, unknown>;
  on_error?: "fail" | "synthesize"; timeout_ms?: number; memory_mib?: number; max_output_kib?: number;
};

/** A proposer: "provider:model", or a table. */
export type Agent = string | {
  model: string; name?: string; temperature?: number; max_tokens?: number; system?: string; samples?: number;
  /** This model's context window in tokens (over the provider's). */
  context_tokens?: number;
};

/** A layer's quorum (see `Recipe.layers`). */
export interface Quorum { min: number; grace_ms?: number; }

/** The same recipe the command line reads from TOML. */
export interface Recipe {
  name?: string;
  description?: string;
  providers: Record<string, {
    kind: "openai" | "anthropic"; base_url: string; api_key_env?: string; max_concurrency?: number;
    /** Context window in tokens: references that would not fit are shortened, each by the same share. */
    context_tokens?: number;
  }>;
  temperature?: number;
  max_tokens?: number;
  /** `quorum`: go on once `min` agents succeeded, cutting the rest after `grace_ms`; `early_exit`: end the run when the proposals that count agree. */
  layers: { agents: Agent[]; strategy?: StrategySpec; min_successes?: number; quorum?: Quorum; early_exit?: boolean }[];
  aggregator: string | {
    model: string; name?: string; temperature?: number; max_tokens?: number; system?: string; strategy?: StrategySpec;
    top_p?: number; seed?: number; stop?: string[]; presence_penalty?: number; frequency_penalty?: number;
    /** Start on the last layer's first chunks: a step each time every live proposer has streamed `chunk_chars` more. */
    staircase?: { chunk_chars: number; step_tokens: number };
    context_tokens?: number;
  };
  policy?: {
    timeout_secs?: number; stall_timeout_secs?: number; retries?: number; backoff_secs?: number;
    max_backoff_secs?: number; max_retry_after_secs?: number; min_successes?: number; max_concurrency?: number;
    quorum?: Quorum;
  };
  /** Dollars per million tokens; `batch`: the share its batch API charges (0.5 when unset). */
  prices?: Record<string, { input: number; output: number; batch?: number }>;
}

/** Tokens; `estimated` when some are estimated (attempts the provider never reported on). */
export interface Usage { input_tokens: number; output_tokens: number; estimated?: boolean; }

interface Place { call: number; layer: number; slot: number; }

/** Events, the same shape as the command line's `--json` lines. */
export type MoaEvent =
  | { type: "run_started"; recipe: string; layers: number; planned_calls: number }
  | (Place & { type: "call_started"; agent: string; provider: string; model: string; attempt: number; aggregator: boolean; t_ms: number })
  | (Place & { type: "text_delta"; text: string })
  | (Place & { type: "call_finished"; agent: string; usage: Usage | null; cost: number | null; latency_ms: number; ttft_ms: number | null; server_ms: number | null; finish_reason: string | null; t_ms: number })
  /** `discarded_chars` > 0: this attempt's streamed text is void; take it back (a retry starts over). */
  | (Place & { type: "call_failed"; agent: string; error: string; kind: ErrorKind; will_retry: boolean; retry_in_ms: number | null; discarded_chars: number; usage: Usage; cost: number | null; t_ms: number })
  | { type: "agent_stopped"; layer: number; slot: number; agent: string; reason: ErrorKind; t_ms: number }
  | { type: "strategy_failed"; layer: number; strategy: string; error: string; fallback: boolean }
  /** What a strategy chose and why (a judge's pick, a seeded choice after an unreadable verdict). */
  | { type: "strategy_note"; layer: number; strategy: string; note: string }
  /** The call's references were shortened to fit its agent's context window; `kept` is the share of each kept. */
  | (Place & { type: "references_trimmed"; window: number; before: number; after: number; references: number; kept: number })
  | { type: "layer_finished"; layer: number; succeeded: number; failed: number; usage: Usage; cost: number | null; wasted: Usage; t_ms: number }
  | { type: "final"; text: string; decided_by: string; usage: Usage; cost: number | null; wasted: Usage; wall_ms: number; ttft_ms: number | null }
  | { type: "run_failed"; error: string; t_ms: number };

export interface CallReport {
  slot: number; agent: string; provider: string; model: string; ok: boolean; text: string; errors: string[];
  attempts: number; usage: Usage | null; cost: number | null; wasted: Usage; latency_ms: number | null; ttft_ms: number | null; server_ms: number | null;
  /** A call a strategy asked for (a judge's verdict, a window's synthesis), not one of the layer's agents. */
  asked?: boolean;
}

/** What a run resolves to. */
export interface Outcome {
  answer: string;
  error: null;
  decided_by: string;
  layers: { layer: number; aggregator: boolean; calls: CallReport[]; usage: Usage; cost: number | null; wasted: Usage }[];
  /** Every attempt's tokens, failed and cancelled ones included. */
  usage: Usage;
  cost: number | null;
  /** The part of `usage` spent on attempts that failed or were cancelled. */
  wasted: Usage;
  /** Why the aggregator's model stopped (`stop`, `length`, ...), when it said. */
  finish_reason: string | null;
  wall_ms: number;
  /** From the start to the answer's first text (null without an answer). */
  ttft_ms: number | null;
}

export interface RunOptions {
  /** Called with every event as it happens. */
  onEvent?: (event: MoaEvent) => void;
  /** Aborting it cancels the run and every request in flight. */
  signal?: AbortSignal;
  /** API keys by provider name; each is sent only to its own provider. */
  keys?: Record<string, string>;
  /** Seeds retry jitter. */
  seed?: number;
}

/** The kind of a failed call. */
export type ErrorKind = "status" | "provider" | "truncated" | "malformed" | "refused" | "dns" | "tls" | "connect" | "reset" | "transport" | "timeout" | "stalled" | "invalid" | "cancelled" | "cut";
export interface Preset { name: string; description: string; recipe: Recipe; }
/** A built-in strategy: its name in recipes, a line on what it does, the params it takes. */
export interface Builtin { name: string; summary: string; params: string[]; }

export interface Validation { ok: boolean; errors: { path: string; message: string }[]; }
