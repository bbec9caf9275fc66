//! What `moa run` shows: the final answer on stdout as it streams, one live line per
//! agent on stderr (plain lines when stderr is not a terminal), or every event as a JSON
//! line with `--json`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use moa_core::Event;
use moa_core::engine::ErrorKind;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// How events are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answer on stdout, progress on stderr.
    Human {
        /// Also print every intermediate answer on stdout.
        show_proposals: bool,
    },
    /// Every event as one JSON line on stdout.
    Json,
}

/// One agent's line.
struct Agent {
    name: String,
    text: String,
    deltas: u64,
    bar: Option<ProgressBar>,
}

/// Shows one run's events.
pub struct Display {
    mode: Mode,
    layers: usize,
    /// stderr is a terminal: draw live lines while proposers work.
    tty: bool,
    /// The live lines of the layer in progress.
    live: Option<MultiProgress>,
    agents: HashMap<(usize, usize), Agent>,
    streamed: bool,
    ends_with_newline: bool,
    /// stdout is a terminal: a voided answer can be erased and redrawn.
    stdout_tty: bool,
    /// The aggregator attempt's text printed so far, to erase if the attempt is voided.
    answer: String,
}

impl Display {
    /// A display for a recipe with `layers` proposer layers.
    pub fn new(mode: Mode, layers: usize) -> Display {
        let tty = mode != Mode::Json && std::io::stderr().is_terminal();
        Display {
            mode,
            layers,
            tty,
            live: None,
            agents: HashMap::new(),
            streamed: false,
            ends_with_newline: true,
            stdout_tty: std::io::stdout().is_terminal(),
            answer: String::new(),
        }
    }

    /// Whether the answer goes where it cannot be taken back: stdout is not a terminal
    /// (a pipe, a file) in human mode. Then the run must not retry an aggregator after
    /// some of its text was printed ([`moa_core::RunOptions::irrevocable_answer`]).
    /// JSON lines carry `discarded_chars`, so their reader can take text back.
    pub fn answer_is_irrevocable(&self) -> bool {
        matches!(self.mode, Mode::Human { .. }) && !self.stdout_tty
    }

    /// Takes back the printed answer of a voided aggregator attempt: on a terminal, moves
    /// the cursor to where the answer began and clears to the end of the screen; if the
    /// answer has scrolled past the top, says plainly that it starts again below.
    fn take_back_answer(&mut self) {
        let printed = std::mem::take(&mut self.answer);
        self.streamed = false;
        self.ends_with_newline = true;
        if printed.is_empty() || !self.stdout_tty {
            return;
        }
        let term = console::Term::stdout();
        let (height, width) = term.size();
        let width = usize::from(width.max(1));
        // Rows the answer occupies; the cursor is on the last one.
        let rows: usize = printed.split('\n').map(|l| console::measure_text_width(l).div_ceil(width).max(1)).sum();
        let mut out = std::io::stdout().lock();
        if rows <= usize::from(height) {
            let up = if rows > 1 { format!("\x1b[{}A", rows - 1) } else { String::new() };
            let _ = write!(out, "\r{up}\x1b[J");
        } else {
            let _ = write!(out, "\n\n[the answer above broke off and is void; it starts again below]\n\n");
        }
        let _ = out.flush();
    }

    /// Shows one event.
    pub fn on_event(&mut self, e: &Event) {
        match self.mode {
            Mode::Json => {
                let mut out = std::io::stdout().lock();
                let _ = serde_json::to_writer(&mut out, e);
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
            Mode::Human { show_proposals } => self.human(e, show_proposals),
        }
    }

    fn human(&mut self, e: &Event, show_proposals: bool) {
        match e {
            Event::CallStarted { aggregator: true, agent, .. } => {
                self.settle();
                self.note(&format!("aggregating with {agent}"));
            }
            Event::CallStarted { at, agent, attempt, .. } => self.call_started(at.layer, at.slot, agent, *attempt),
            Event::TextDelta { at, text } if at.layer == self.layers => self.answer_text(text),
            Event::TextDelta { at, text } => {
                if let Some(a) = self.agents.get_mut(&(at.layer, at.slot)) {
                    a.text.push_str(text);
                    a.deltas += 1;
                    if let Some(b) = &a.bar {
                        b.set_message(format!("streaming {:>5} tok", a.deltas));
                    }
                }
            }
            Event::CallFinished { at, usage, latency_ms, .. } if at.layer < self.layers => {
                if let Some(a) = self.agents.get(&(at.layer, at.slot)) {
                    let tokens = usage.map_or(a.deltas, |u| u.output_tokens);
                    let msg = format!("done {tokens:>5} tok {:>5.1}s", latency_ms / 1000.0);
                    match &a.bar {
                        Some(b) if !b.is_hidden() => b.finish_with_message(msg),
                        _ => self.note(&format!("L{} {}: {msg}", at.layer, a.name)),
                    }
                }
            }
            Event::CallFailed { at, error, will_retry, discarded_chars, .. }
                if at.layer == self.layers && *discarded_chars > 0 =>
            {
                self.take_back_answer();
                let then = if *will_retry { "retrying from the start" } else { "giving up" };
                self.note(&format!("the aggregator's answer broke off ({error}); {then}"));
            }
            Event::CallFailed { at, error, kind, will_retry, retry_in_ms, .. } => {
                let msg = match (will_retry, retry_in_ms) {
                    (true, Some(ms)) => format!("failed, retrying in {:.1}s: {error}", ms / 1000.0),
                    // A quorum or an agreement went on without it: not a failure.
                    _ if *kind == ErrorKind::Cut => error.clone(),
                    _ => format!("failed: {error}"),
                };
                self.agent_ended(at.layer, at.slot, msg, *will_retry);
            }
            Event::StrategyFailed { layer, strategy, error, fallback } => {
                let then = if *fallback { "using synthesize instead" } else { "the run fails" };
                self.note(&format!("strategy {strategy} for layer {layer} failed ({then}): {error}"));
            }
            Event::StrategyNote { layer, strategy, note } => {
                self.note(&format!("strategy {strategy} for layer {layer}: {note}"));
            }
            Event::LayerFinished { layer, .. } if show_proposals && *layer < self.layers => self.proposals(*layer),
            Event::AgentStopped { layer, slot, reason, .. } if self.agents.contains_key(&(*layer, *slot)) => {
                self.agent_ended(*layer, *slot, format!("stopped ({reason})"), false);
            }
            Event::Final { text, decided_by, usage, cost, wasted, wall_ms, ttft_ms, tool_calls } => {
                self.finish_answer(text, tool_calls);
                let cost = cost.map(|c| format!(", ${c:.4}")).unwrap_or_default();
                let estimated = if usage.estimated { " (some estimated)" } else { "" };
                let wasted = if wasted.is_zero() {
                    String::new()
                } else {
                    format!("; {} of them on failed or cancelled attempts", wasted.total())
                };
                let first = ttft_ms.filter(|t| t < wall_ms).map(|t| format!(" (first token at {:.1}s)", t / 1000.0));
                self.note(&format!(
                    "done in {:.1}s{} by {decided_by}: {} tokens in, {} out{estimated}{cost}{wasted}",
                    wall_ms / 1000.0,
                    first.unwrap_or_default(),
                    usage.input_tokens,
                    usage.output_tokens
                ));
            }
            Event::RunFailed { .. } => self.settle(),
            _ => {}
        }
    }

    /// A proposer's call began (or began again): its live line, or a note.
    fn call_started(&mut self, layer: usize, slot: usize, agent: &str, attempt: u32) {
        if self.tty && self.live.is_none() {
            self.live = Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        }
        let bar = self.live.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            // The elapsed column ticks while the call runs; on finish it is dropped.
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:48!} {msg:32} {elapsed:>4}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(format!("L{layer} {agent}"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let a = self.agents.entry((layer, slot)).or_insert(Agent {
            name: agent.to_owned(),
            text: String::new(),
            deltas: 0,
            bar: None,
        });
        a.text.clear();
        a.deltas = 0;
        if let Some(old) = a.bar.replace(bar.clone().unwrap_or_else(ProgressBar::hidden)) {
            old.finish_and_clear();
        }
        let state = if attempt > 1 { format!("retrying (attempt {attempt})") } else { "waiting".into() };
        match &bar {
            Some(b) => b.set_message(state),
            None => self.note(&format!("L{layer} {agent}: {state}")),
        }
    }

    /// A piece of the answer, straight to stdout.
    fn answer_text(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        self.answer.push_str(text);
        self.streamed = true;
        self.ends_with_newline = text.ends_with('\n');
    }

    /// An agent's call failed or it was stopped: its line says so (and stays, unless it
    /// will retry), or a note does.
    fn agent_ended(&mut self, layer: usize, slot: usize, msg: String, will_retry: bool) {
        let agent = self.agents.get(&(layer, slot));
        match agent.and_then(|a| a.bar.as_ref().filter(|b| !b.is_hidden())) {
            Some(b) if will_retry => b.set_message(msg),
            Some(b) => b.abandon_with_message(msg),
            None => {
                let name = agent.map_or("the aggregator", |a| a.name.as_str());
                self.note(&format!("L{layer} {name}: {msg}"))
            }
        }
    }

    /// Every proposal of `layer`, printed before the final answer (`--show-proposals`).
    fn proposals(&mut self, layer: usize) {
        self.settle();
        let mut slots: Vec<_> = self.agents.iter().filter(|((l, _), _)| *l == layer).collect();
        slots.sort_by_key(|((_, s), _)| *s);
        let mut out = std::io::stdout().lock();
        for (_, a) in slots {
            let _ = writeln!(out, "── layer {layer} · {} ──\n{}\n", a.name, a.text.trim());
        }
        let _ = writeln!(out, "── final answer ──");
        let _ = out.flush();
    }

    /// The answer is final: printed whole if it was not streamed, and ended with a newline.
    /// The answer's end on stdout; an answer that calls tools ends with one line per
    /// call, `tool_call` and the call as OpenAI writes it (JSON), for scripts to read.
    fn finish_answer(&mut self, text: &str, calls: &[moa_core::ToolCall]) {
        self.settle();
        let mut out = std::io::stdout().lock();
        if !self.streamed {
            let _ = out.write_all(text.as_bytes());
            self.ends_with_newline = text.ends_with('\n') || text.is_empty();
        }
        if !self.ends_with_newline {
            let _ = out.write_all(b"\n");
        }
        for call in calls {
            let json = serde_json::to_string(call).unwrap_or_default();
            let _ = writeln!(out, "tool_call {json}");
        }
        let _ = out.flush();
    }

    /// Replaces the live lines with plain ones, before anything goes to stdout: a live
    /// display redrawn under streaming text would garble both.
    fn settle(&mut self) {
        let Some(live) = self.live.take() else { return };
        let mut lines: Vec<((usize, usize), String)> = self
            .agents
            .iter()
            .filter_map(|(k, a)| {
                a.bar.as_ref().filter(|b| !b.is_hidden()).map(|b| (*k, format!("  {:48} {}", b.prefix(), b.message())))
            })
            .collect();
        lines.sort();
        for a in self.agents.values_mut() {
            if let Some(b) = a.bar.take() {
                b.finish_and_clear();
            }
        }
        let _ = live.clear();
        for (_, line) in lines {
            eprintln!("{line}");
        }
    }

    fn note(&self, line: &str) {
        match &self.live {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("moa: {line}"),
        }
    }
}
