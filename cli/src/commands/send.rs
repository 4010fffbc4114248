//! send: one message, delivered exactly once however often the connection
//! fails on the way.

use std::io::Read as _;
use std::time::Duration;

use anyhow::Context as _;
use tidings_proto::SendMessageRequest;

use crate::api::{Context, call};
use crate::args::SendArgs;
use crate::error::CliError;
use crate::retry::{Backoff, is_transient, wait_after};

/// One try waits this long for an answer before it counts as lost.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(ctx: &Context, args: SendArgs) -> anyhow::Result<()> {
    let content = if args.text == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the message from stdin")?;
        text
    } else {
        args.text
    };
    let mut api = ctx.login().await?;
    // One key for every try: if a try reached the server but its answer was
    // lost, the next one gets the stored message back instead of a copy.
    let key = uuid::Uuid::now_v7().to_string();
    let give_up = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut backoff = Backoff::default();
    loop {
        let request = SendMessageRequest {
            chat_id: args.chat_id.clone(),
            content: content.clone(),
            idempotency_key: key.clone(),
            ..Default::default()
        };
        let attempt =
            tokio::time::timeout(ATTEMPT_TIMEOUT, call(api.messages.send_message(request)));
        let err = match attempt.await {
            Ok(Ok(reply)) => {
                let m = reply
                    .message
                    .context("the server answered without the message")?;
                println!("{}\t{}", m.seq, m.id);
                return Ok(());
            }
            Ok(Err(err)) => err,
            Err(_) => CliError::Unreachable {
                code: tonic::Code::DeadlineExceeded,
                detail: format!(
                    "no answer within {}",
                    humantime::format_duration(ATTEMPT_TIMEOUT)
                ),
            },
        };
        if !is_transient(&err) {
            return Err(err).context("sending");
        }
        // A rate limit that names its wait (RetryInfo) is waited out as
        // the server says; anything else backs off as usual.
        let (delay, told) = wait_after(&err, &mut backoff);
        if give_up.is_some_and(|at| tokio::time::Instant::now() + delay >= at) {
            return Err(err).context("sending: giving up");
        }
        if let Some(told) = told {
            eprintln!("tidings-chat: send: {told} with the same idempotency key");
        } else if backoff.worth_reporting() {
            eprintln!(
                "tidings-chat: send: {err}; retrying with the same idempotency key (attempt {})",
                backoff.failures()
            );
        }
        tokio::time::sleep(delay).await;
    }
}
