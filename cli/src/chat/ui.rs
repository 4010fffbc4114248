//! The terminal side of the interactive chat: a line editor on its own
//! thread (rustyline blocks) whose prompt stays at the bottom while events
//! are printed above it, or plain lines when stdin or stdout is not a
//! terminal (scripts, tests).

use std::io::IsTerminal as _;

use rustyline::{
    Cmd, ConditionalEventHandler, DefaultEditor, Event, EventContext, EventHandler,
    ExternalPrinter, KeyCode, KeyEvent, Modifiers, RepeatCount,
};
use tokio::sync::mpsc;

/// What the person did.
#[derive(Debug)]
pub enum Input {
    /// Pressed Enter.
    Line(String),
    /// Typed a character of a message.
    Typing,
    /// Ctrl-D, or the end of piped input.
    Eof,
    /// Ctrl-C.
    Interrupted,
}

/// Lines typed ahead while the client is busy; more than this and the
/// editor thread waits (it never drops what was typed).
const INPUT_BUFFER: usize = 256;

pub struct Ui {
    out: Output,
    _terminal: Option<TerminalGuard>,
}

enum Output {
    Editor(Box<dyn ExternalPrinter + Send>),
    Plain,
}

impl Ui {
    pub fn start(prompt: String) -> anyhow::Result<(Ui, mpsc::Receiver<Input>)> {
        let (tx, rx) = mpsc::channel(INPUT_BUFFER);
        if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            let guard = TerminalGuard::save();
            let mut editor = DefaultEditor::new()?;
            editor.bind_sequence(
                Event::Any,
                EventHandler::Conditional(Box::new(TypingHook(tx.clone()))),
            );
            let printer = editor.create_external_printer()?;
            std::thread::Builder::new()
                .name("line-editor".into())
                .spawn(move || edit_lines(editor, prompt, tx))?;
            let ui = Ui {
                out: Output::Editor(Box::new(printer)),
                _terminal: guard,
            };
            Ok((ui, rx))
        } else {
            // A thread, not tokio's stdin: a blocked read must not keep the
            // runtime from shutting down.
            std::thread::Builder::new()
                .name("stdin".into())
                .spawn(move || read_plain_lines(tx))?;
            let ui = Ui {
                out: Output::Plain,
                _terminal: None,
            };
            Ok((ui, rx))
        }
    }

    /// Prints a line above the prompt.
    pub fn print(&mut self, text: impl Into<String>) {
        let text = text.into();
        if let Output::Editor(printer) = &mut self.out
            && printer.print(format!("{text}\n")).is_ok()
        {
            return;
        }
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}").and_then(|()| out.flush());
    }
}

fn edit_lines(mut editor: DefaultEditor, prompt: String, tx: mpsc::Sender<Input>) {
    loop {
        let input = match editor.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                Input::Line(line)
            }
            Err(rustyline::error::ReadlineError::Interrupted) => Input::Interrupted,
            Err(_) => Input::Eof,
        };
        let last = !matches!(input, Input::Line(_));
        if tx.blocking_send(input).is_err() || last {
            return;
        }
    }
}

fn read_plain_lines(tx: mpsc::Sender<Input>) {
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { break };
        if tx.blocking_send(Input::Line(line)).is_err() {
            return;
        }
    }
    let _ = tx.blocking_send(Input::Eof);
}

/// Sees every key the editor reads and reports the ones that type a
/// character; the editor then handles the key as usual.
struct TypingHook(mpsc::Sender<Input>);

impl ConditionalEventHandler for TypingHook {
    fn handle(&self, evt: &Event, _: RepeatCount, _: bool, _: &EventContext<'_>) -> Option<Cmd> {
        if let Event::KeySeq(keys) = evt
            && let [KeyEvent(KeyCode::Char(_), m)] = keys.as_slice()
            && (*m == Modifiers::NONE || *m == Modifiers::SHIFT)
        {
            // Full means the chat loop is behind; a lost typing hint is
            // harmless.
            let _ = self.0.try_send(Input::Typing);
        }
        None
    }
}

/// Puts the terminal back as it was when the chat ends while the editor
/// thread is still inside `readline` (in raw mode).
struct TerminalGuard(nix::sys::termios::Termios);

impl TerminalGuard {
    fn save() -> Option<TerminalGuard> {
        nix::sys::termios::tcgetattr(std::io::stdin())
            .ok()
            .map(TerminalGuard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}
