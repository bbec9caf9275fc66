// Generated from moa-core's Rust types by `MOA_BLESS=1 cargo test -p moa-core --lib the_checked_in_declarations`
// (core/src/ts.rs); a test fails when this file differs. Do not edit by hand.

export type Role = "system" | "user" | "assistant" | "tool";

export type FunctionCall = { 
/**
 * The function's name.
 */
name: string, 
/**
 * Its arguments, as JSON text.
 */
arguments: string, };

export type ToolCall = { 
/**
 * The call's id, which its result answers.
 */
id: string, 
/**
 * Always `function`.
 */
type: string, 
/**
 * Which function, with what.
 */
function: FunctionCall, };

export type Message = { 
/**
 * Who wrote it.
 */
role: Role, 
/**
 * Its text.
 */
content: string, 
/**
 * An assistant's calls of tools.
 */
tool_calls?: Array<ToolCall>, 
/**
 * The call a tool message answers.
 */
tool_call_id?: string | null, };

export type Tool = { 
/**
 * Its name, as calls give it.
 */
name: string, 
/**
 * What it does, for the model.
 */
description?: string | null, 
/**
 * A JSON schema of its arguments (an object schema).
 */
parameters: Record<string, unknown>, 
/**
 * OpenAI's strict mode: passed on to providers that take it.
 */
strict?: boolean | null, };

export type ToolChoice = "auto" | "none" | "required" | { "function": string };

export type Tools = { 
/**
 * The functions.
 */
tools: Array<Tool>, 
/**
 * Whether a call is wanted.
 */
choice: ToolChoice, 
/**
 * Whether more than one call may come at once (OpenAI's default: yes).
 */
parallel: boolean, };

export type ToolPolicy = "aggregator" | "vote";

export type JsonSchemaFormat = { 
/**
 * Its name.
 */
name: string, 
/**
 * The schema (OpenAI makes it optional: absent, any JSON).
 */
schema: Record<string, unknown>, 
/**
 * OpenAI's strict mode, passed on.
 */
strict?: boolean | null, };

export type ResponseFormat = { "type": "text" } | { "type": "json_object" } | { "type": "json_schema", 
/**
 * OpenAI's wrapper: `{name, schema, strict}`.
 */
json_schema: JsonSchemaFormat, };

export type Usage = { 
/**
 * Prompt tokens (for Anthropic including cache reads and writes).
 */
input_tokens: number, 
/**
 * Generated tokens.
 */
output_tokens: number, 
/**
 * Some of these tokens are estimated, not reported: an attempt that failed, was cut
 * or was cancelled before the provider sent its usage (see [`Usage::estimate`]).
 */
estimated?: boolean, };

export type Price = { 
/**
 * Dollars per million input tokens.
 */
input: number, 
/**
 * Dollars per million output tokens.
 */
output: number, 
/**
 * The share of these prices the provider's batch API charges (`moa batch --via
 * batch-api`); half, as OpenAI and Anthropic charge today, when unset.
 */
batch?: number | null, };

export type ProviderKind = "openai" | "anthropic";

export type Provider = { 
/**
 * The wire protocol: `"openai"` (chat completions) or `"anthropic"` (Messages).
 */
kind: ProviderKind, 
/**
 * The API root, for example `https://api.together.xyz/v1` or `http://127.0.0.1:8081/v1`.
 */
base_url: string, 
/**
 * The environment variable that holds the key (native host). A provider with one
 * needs a key at run time; JavaScript callers pass it under the provider's name. A
 * provider without one (a local server) is called without a key. Keys themselves
 * are never part of a recipe.
 */
api_key_env?: string | null, 
/**
 * Most calls in flight to this provider at once; 1 serializes calls to a local
 * single-GPU server. Unlimited when unset.
 */
max_concurrency?: number | null, 
/**
 * The models' context window, in tokens (prompt and answer together). When the
 * references would not fit an agent's window, each is shortened by the same share
 * (see docs/strategies.md, "References that fit"). Unlimited when unset.
 */
context_tokens?: number | null, 
/**
 * The provider takes tools natively (OpenAI's `tools`, Anthropic's `tool_use`).
 * When false, a model that should call tools gets them described as text and calls
 * by answering with JSON (`{"tool_calls": [{"name", "arguments"}]}`).
 */
tools?: boolean, };

export type OnError = "fail" | "synthesize";

export type StrategySpec = { 
/**
 * A built-in strategy's name.
 */
name?: string | null, 
/**
 * Path of a plugin component (`.wasm`).
 */
plugin?: string | null, 
/**
 * Parameters handed to the strategy.
 */
params?: Record<string, unknown>, 
/**
 * What to do when the strategy fails to decide.
 */
on_error?: OnError, 
/**
 * Plugin deadline per decision, in milliseconds of wall time.
 */
timeout_ms?: number | null, 
/**
 * Plugin linear-memory cap, in MiB.
 */
memory_mib?: number | null, 
/**
 * Cap on what a plugin may return, in KiB.
 */
max_output_kib?: number | null, };

export type Agent = { 
/**
 * `provider:model`; the provider is everything before the first colon.
 */
model: string, 
/**
 * Display name in events; `model`, with `#k` per sample, when unset.
 */
name?: string | null, 
/**
 * Sampling temperature (0–2; 0–1 for Anthropic).
 */
temperature?: number | null, 
/**
 * Cap on generated tokens.
 */
max_tokens?: number | null, 
/**
 * This agent's own system prompt, placed before any other.
 */
system?: string | null, 
/**
 * How many independent answers to draw from this model (Self-MoA).
 */
samples?: number, 
/**
 * This model's context window in tokens, over the provider's `context_tokens`.
 */
context_tokens?: number | null, };

export type Quorum = { 
/**
 * Successes that make the quorum.
 */
min: number, 
/**
 * How long the stragglers may still finish after the quorum is met, in ms.
 */
grace_ms?: number, };

export type Layer = { 
/**
 * The agents, all started together.
 */
agents: Array<string | Agent>, 
/**
 * How the previous layer's proposals become this layer's input. Not allowed on the
 * first layer, which has no previous layer; `synthesize` when unset.
 */
strategy?: string | StrategySpec, 
/**
 * Fewest agents (samples counted one by one) that must succeed for the run to go
 * on; `policy.min_successes` when unset.
 */
min_successes?: number | null, 
/**
 * Go on without the stragglers once this many have succeeded; `policy.quorum` when
 * unset, and every agent when neither is set.
 */
quorum?: Quorum | null, 
/**
 * End the run here, without an aggregator call, when the proposals that count (the
 * quorum's, or all) agree on one short answer (the `vote` normalizer's), unanimously.
 */
early_exit?: boolean, };

export type Staircase = { 
/**
 * Characters of each proposal that make the first chunk (default 48).
 */
chunk_chars?: number, 
/**
 * Most tokens the aggregator writes in its first step (default 32); no step writes
 * past the aggregator's `max_tokens`.
 */
step_tokens?: number, 
/**
 * How many times larger each chunk and step is than the one before (default 8; 1
 * keeps them all the same size).
 */
growth?: number, };

export type Aggregator = { 
/**
 * `provider:model`.
 */
model: string, 
/**
 * Display name in events; `model` when unset.
 */
name?: string | null, 
/**
 * Sampling temperature.
 */
temperature?: number | null, 
/**
 * Cap on generated tokens.
 */
max_tokens?: number | null, 
/**
 * The aggregator's own system prompt.
 */
system?: string | null, 
/**
 * How the last layer's proposals reach the aggregator; `synthesize` when unset.
 */
strategy?: string | StrategySpec, 
/**
 * Nucleus sampling (0..=1), sent to the provider.
 */
top_p?: number | null, 
/**
 * Sampling seed, for providers that take one (OpenAI-compatible only).
 */
seed?: number | null, 
/**
 * Up to 4 stop sequences: the answer ends before the first one. Sent to the provider
 * and also enforced by moa, so they hold even where a provider ignores them.
 */
stop?: Array<string>, 
/**
 * Presence penalty (-2..=2; OpenAI-compatible only).
 */
presence_penalty?: number | null, 
/**
 * Frequency penalty (-2..=2; OpenAI-compatible only).
 */
frequency_penalty?: number | null, 
/**
 * Staircase streaming: start on the last layer's first chunks instead of waiting
 * for it to finish.
 */
staircase?: Staircase | null, 
/**
 * This model's context window in tokens, over the provider's `context_tokens`.
 */
context_tokens?: number | null, };

export type Policy = { 
/**
 * Longest one attempt of a call may take, start to last byte, in seconds.
 */
timeout_secs?: number, 
/**
 * Longest wait for the next byte of a response, in seconds.
 */
stall_timeout_secs?: number, 
/**
 * Further attempts after a retryable failure (429, 5xx, transport error, timeout).
 */
retries?: number, 
/**
 * First backoff, in seconds; it doubles per attempt, with jitter.
 */
backoff_secs?: number, 
/**
 * Cap on one backoff, in seconds.
 */
max_backoff_secs?: number, 
/**
 * A `Retry-After` longer than this, in seconds, fails the call instead of waiting.
 */
max_retry_after_secs?: number, 
/**
 * Fewest successful agents per layer for the run to go on.
 */
min_successes?: number, 
/**
 * Most calls in flight at once for this run, over all providers. Unlimited when unset.
 */
max_concurrency?: number, 
/**
 * Every layer's quorum, unless the layer sets its own.
 */
quorum?: Quorum, };

export type Recipe = { 
/**
 * A short name, shown in events and listings.
 */
name?: string, 
/**
 * One line on what the recipe is for.
 */
description?: string, 
/**
 * The providers agents are served by, by name.
 */
providers: { [key in string]: Provider }, 
/**
 * Temperature for every agent that does not set its own.
 */
temperature?: number | null, 
/**
 * Generated-token cap for every agent that does not set its own.
 */
max_tokens?: number | null, 
/**
 * Proposer layers, in order. The first answers the conversation; each later one
 * sees the previous layer's answers through its strategy.
 */
layers: Array<Layer>, 
/**
 * The agent that writes the final answer from the last layer's proposals.
 */
aggregator: string | Aggregator, 
/**
 * Timeouts, retries and failure tolerance.
 */
policy?: Policy, 
/**
 * Optional prices, keyed by `provider:model`, to report costs.
 */
prices?: { [key in string]: Price }, 
/**
 * How the mixture uses the tools a run offers: `aggregator` (proposers advise, the
 * aggregator calls) or `vote` (the last proposer layer calls; a majority decides).
 */
tool_policy?: ToolPolicy, };

export type CallId = number;

export type Place = { 
/**
 * The call's id; a retry gets a new one.
 */
call: CallId, 
/**
 * The layer.
 */
layer: number, 
/**
 * The agent's index in the layer.
 */
slot: number, };

export type ErrorKind = "status" | "provider" | "truncated" | "malformed" | "refused" | "dns" | "tls" | "connect" | "reset" | "transport" | "timeout" | "stalled" | "invalid" | "cancelled" | "cut" | "rejected";

export type MoaEvent = { "type": "run_started", 
/**
 * The recipe's name.
 */
recipe: string, 
/**
 * Proposer layers.
 */
layers: number, 
/**
 * Calls the run makes if nothing fails or stops early
 * ([`Recipe::call_count`](crate::Recipe::call_count)).
 */
planned_calls: number, } | { "type": "call_started", 
/**
 * The agent's display name.
 */
agent: string, 
/**
 * The provider's name in the recipe.
 */
provider: string, 
/**
 * The model.
 */
model: string, 
/**
 * 1 for the first try.
 */
attempt: number, 
/**
 * Whether this is the final aggregator.
 */
aggregator: boolean, 
/**
 * When.
 */
t_ms: number, 
/**
 * The call's id; a retry gets a new one.
 */
call: CallId, 
/**
 * The layer.
 */
layer: number, 
/**
 * The agent's index in the layer.
 */
slot: number, } | { "type": "text_delta", 
/**
 * The new text.
 */
text: string, 
/**
 * The call's id; a retry gets a new one.
 */
call: CallId, 
/**
 * The layer.
 */
layer: number, 
/**
 * The agent's index in the layer.
 */
slot: number, } | { "type": "call_finished", 
/**
 * The agent's display name.
 */
agent: string, 
/**
 * Tokens as the provider reported them, or an estimate (marked `estimated`) when
 * the engine cut the answer at a stop sequence before the provider sent any.
 */
usage: Usage | null, 
/**
 * Dollars, when the recipe prices the model.
 */
cost: number | null, 
/**
 * Start of this attempt to its last byte.
 */
latency_ms: number, 
/**
 * Start of this attempt to its first text.
 */
ttft_ms: number | null, 
/**
 * The server's own processing time, where it reports one (llama.cpp).
 */
server_ms: number | null, 
/**
 * Why the model stopped, in OpenAI's words (`stop`, `length`, ...), when the
 * provider said; `stop` when the engine cut it at one of its stop sequences.
 */
finish_reason: string | null, 
/**
 * When.
 */
t_ms: number, 
/**
 * The call's id; a retry gets a new one.
 */
call: CallId, 
/**
 * The layer.
 */
layer: number, 
/**
 * The agent's index in the layer.
 */
slot: number, } | { "type": "call_failed", 
/**
 * The agent's display name.
 */
agent: string, 
/**
 * What went wrong.
 */
error: string, 
/**
 * Its kind: what a front end switches on (a `cut` proposal is not a broken one).
 */
kind: ErrorKind, 
/**
 * Whether the agent will be tried again.
 */
will_retry: boolean, 
/**
 * After how long, when it will.
 */
retry_in_ms: number | null, 
/**
 * Characters of text this attempt had streamed in [`Event::TextDelta`]s, all of
 * which are now void: a consumer that showed them must take them back (a retry
 * streams its answer from the start). 0 when it streamed nothing.
 */
discarded_chars: number, 
/**
 * Tokens the attempt consumed anyway: the provider's count when it sent one,
 * else an estimate (marked `estimated`); zero when the provider refused it.
 */
usage: Usage, 
/**
 * Their cost in dollars, when priced.
 */
cost: number | null, 
/**
 * When.
 */
t_ms: number, 
/**
 * The call's id; a retry gets a new one.
 */
call: CallId, 
/**
 * The layer.
 */
layer: number, 
/**
 * The agent's index in the layer.
 */
slot: number, } | { "type": "agent_stopped", 
/**
 * The layer.
 */
layer: number, 
/**
 * The agent's index in the layer.
 */
slot: number, 
/**
 * The agent's display name.
 */
agent: string, 
/**
 * Why: `cancelled` or `cut`.
 */
reason: ErrorKind, 
/**
 * When.
 */
t_ms: number, } | { "type": "strategy_failed", 
/**
 * The layer it was deciding for.
 */
layer: number, 
/**
 * The strategy's name or plugin path.
 */
strategy: string, 
/**
 * Why.
 */
error: string, 
/**
 * Whether `synthesize` decided instead.
 */
fallback: boolean, } | { "type": "strategy_note", 
/**
 * The layer it was deciding for.
 */
layer: number, 
/**
 * The strategy's name.
 */
strategy: string, 
/**
 * What it chose, and why.
 */
note: string, } | { "type": "references_trimmed", 
/**
 * Its agent's context window, in tokens.
 */
window: number, 
/**
 * The prompt's estimated tokens before and after.
 */
before: number, 
/**
 * After.
 */
after: number, 
/**
 * References shortened (every one found in the prompt).
 */
references: number, 
/**
 * The share of each reference kept, 0..1.
 */
kept: number, 
/**
 * The call's id; a retry gets a new one.
 */
call: CallId, 
/**
 * The layer.
 */
layer: number, 
/**
 * The agent's index in the layer.
 */
slot: number, } | { "type": "layer_finished", 
/**
 * The layer.
 */
layer: number, 
/**
 * Agents that succeeded.
 */
succeeded: number, 
/**
 * Agents that failed after their retries.
 */
failed: number, 
/**
 * Tokens of every attempt of the layer: successful, failed, retried, cancelled.
 */
usage: Usage, 
/**
 * Dollars, when priced, for the same.
 */
cost: number | null, 
/**
 * The part of `usage` spent on attempts that failed or were cancelled.
 */
wasted: Usage, 
/**
 * When.
 */
t_ms: number, } | { "type": "final", 
/**
 * The whole answer.
 */
text: string, 
/**
 * What decided it ([`Outcome::decided_by`](crate::Outcome::decided_by)).
 */
decided_by: string, 
/**
 * Tokens over every attempt of every call of the run, failed ones included.
 */
usage: Usage, 
/**
 * Dollars, when priced, for the same.
 */
cost: number | null, 
/**
 * The part of `usage` spent on attempts that failed or were cancelled.
 */
wasted: Usage, 
/**
 * The run's wall time.
 */
wall_ms: number, 
/**
 * Time to first token of the answer ([`Outcome::ttft_ms`](crate::Outcome::ttft_ms)).
 */
ttft_ms: number | null, 
/**
 * The tools the answer calls ([`Outcome::tool_calls`](crate::Outcome::tool_calls)).
 */
tool_calls?: Array<ToolCall>, } | { "type": "run_failed", 
/**
 * Why.
 */
error: string, 
/**
 * When.
 */
t_ms: number, };

export type CallReport = { 
/**
 * The agent's index in its layer.
 */
slot: number, 
/**
 * Its display name.
 */
agent: string, 
/**
 * Its provider's name.
 */
provider: string, 
/**
 * Its model.
 */
model: string, 
/**
 * Whether it succeeded.
 */
ok: boolean, 
/**
 * The answer (trimmed, as strategies see it), empty on failure.
 */
text: string, 
/**
 * The error of every failed attempt, in order, and a last `cancelled` or `cut` when
 * the agent was stopped while it waited (to retry, or for a free slot).
 */
errors: Array<string>, 
/**
 * Attempts made.
 */
attempts: number, 
/**
 * Tokens of the successful attempt.
 */
usage: Usage | null, 
/**
 * Its cost in dollars, when priced.
 */
cost: number | null, 
/**
 * Tokens of its failed, retried and cancelled attempts (reported or estimated).
 */
wasted: Usage, 
/**
 * Its latency.
 */
latency_ms: number | null, 
/**
 * Its time to first token.
 */
ttft_ms: number | null, 
/**
 * When its (last) attempt was asked of the transport, in ms from the run's start.
 * `latency_ms` and `ttft_ms` count from when it was sent, which is later when it
 * waited in the transport's queue.
 */
started_ms: number | null, 
/**
 * The server's own processing time, where it reports one (llama.cpp).
 */
server_ms: number | null, 
/**
 * A call a strategy asked for (a judge's verdict, a window's synthesis), not one of
 * the layer's agents.
 */
asked?: boolean, };

export type LayerReport = { 
/**
 * The layer's index.
 */
layer: number, 
/**
 * Whether it is the final aggregator.
 */
aggregator: boolean, 
/**
 * Every agent's call.
 */
calls: Array<CallReport>, 
/**
 * Tokens of every attempt in the layer, failed ones included.
 */
usage: Usage, 
/**
 * Dollars, when priced, for the same.
 */
cost: number | null, 
/**
 * The part of `usage` spent on attempts that failed or were cancelled.
 */
wasted: Usage, };

export type AnswerOrError = { 
/**
 * The answer, when the run produced one.
 */
answer: string | null, 
/**
 * Why it did not.
 */
error: string | null, };

export type Outcome = AnswerOrError & { 
/**
 * The aggregator's name, the strategy that decided alone, or, when a layer's agents
 * agreed (`early_exit`), the agreement (`agreement: 3 agents answered "7"`).
 */
decided_by: string | null, 
/**
 * Every layer that ran, the aggregator's last.
 */
layers: Array<LayerReport>, 
/**
 * Tokens over every attempt of every call, failed, retried and cancelled ones
 * included, so the total never reads low.
 */
usage: Usage, 
/**
 * Dollars, when priced, for the same.
 */
cost: number | null, 
/**
 * The part of `usage` spent on attempts that failed or were cancelled.
 */
wasted: Usage, 
/**
 * Why the aggregator's model stopped (`stop`, `length`, ...), when an aggregator
 * wrote the answer and its provider said; `tool_calls` when the answer is calls.
 */
finish_reason: string | null, 
/**
 * The tools the answer calls (then `answer` is what the model said beside them,
 * often nothing). Empty for an answer in words.
 */
tool_calls?: Array<ToolCall>, 
/**
 * Wall time of the run.
 */
wall_ms: number, 
/**
 * Time to first token: from the run's start to the first text of its answer that
 * stayed in it (the aggregator's, or a staircase's first step's; text a failed
 * attempt streamed and the retry voided does not count), or to the moment a
 * strategy decided the answer without an aggregator call. `None` without an answer.
 * The one definition that eval, serve's log, the CLI and the page report.
 */
ttft_ms: number | null, };

/** What `Moa.run` resolves to: it rejects when the run fails, so there is an answer. */
export type Answered = Outcome & { answer: string; error: null };

export interface RunOptions {
  /** Called with every event as it happens. */
  onEvent?: (event: MoaEvent) => void;
  /** Aborting it cancels the run and every request in flight. */
  signal?: AbortSignal;
  /** API keys by provider name; each is sent only to its own provider. */
  keys?: Record<string, string>;
  /** Seeds retry jitter. */
  seed?: number;
  /** Tools the answer may call (the recipe's `tool_policy` says how the mixture uses them). */
  tools?: Tool[];
  /** `"auto"` (default), `"none"`, `"required"`, or `{ function: "name" }`. */
  toolChoice?: ToolChoice;
  /** Whether several calls may come at once (default true). */
  parallelToolCalls?: boolean;
  /** The final answer's shape, checked before it resolves. */
  responseFormat?: ResponseFormat;
  /**
   * Strategy plugins the recipe names (`strategy: { plugin: "NAME" }`), by that name:
   * each loaded with `loadPlugin` from `moa-wasm/plugins.js`.
   */
  plugins?: Record<string, LoadedPlugin>;
}

/** A strategy plugin `loadPlugin` loaded (`moa-wasm/plugins.js`): it runs in a Worker. */
export interface LoadedPlugin {
  /** The name recipes give it. */
  readonly name: string;
  /** The contract version it implements: "0.2.0" or "0.1.0". */
  readonly contract: string;
  /** Its size in bytes. */
  readonly size: number;
  /** What it says of itself. */
  readonly info: { name: string; version: string; description: string; params: string } | null;
  /** Stops its Workers. */
  close(): void;
}

/** A built-in recipe. */
export interface Preset { name: string; description: string; recipe: Recipe; }

/** A built-in strategy: its name in recipes, a line on what it does, the params it takes. */
export interface Builtin { name: string; summary: string; params: string[]; }

/** What `validateRecipe` says. */
export interface Validation { ok: boolean; errors: { path: string; message: string }[]; }
