//! register, login, logout, whoami.

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::Context as _;
use tidings_proto::{CreateUserRequest, GetMeRequest, LoginRequest};

use crate::api::{Context, call, new_session, now};
use crate::args::{LoginArgs, Password, RegisterArgs};

pub async fn register(ctx: &Context, args: RegisterArgs) -> anyhow::Result<()> {
    let password = password(args.password, true)?;
    let (server, mut users) = ctx.anonymous()?;
    let reply = call(users.create_user(CreateUserRequest {
        username: args.username,
        email: args.email,
        password,
    }))
    .await
    .context("registering")?;
    let session = new_session(server, reply.user, reply.token, reply.expires_at)?;
    ctx.store.save_session(&session)?;
    println!(
        "registered and logged in as {} <{}> on {}",
        session.username, session.email, session.server
    );
    Ok(())
}

pub async fn login(ctx: &Context, args: LoginArgs) -> anyhow::Result<()> {
    let password = password(args.password, false)?;
    let (server, mut users) = ctx.anonymous()?;
    let reply = call(users.login(LoginRequest {
        email: args.email,
        password,
    }))
    .await
    .context("logging in")?;
    let session = new_session(server, reply.user, reply.token, reply.expires_at)?;
    ctx.store.save_session(&session)?;
    println!(
        "logged in as {} <{}> on {}",
        session.username, session.email, session.server
    );
    Ok(())
}

pub fn logout(ctx: &Context) -> anyhow::Result<()> {
    if ctx.store.forget_session()? {
        println!("logged out");
    } else {
        println!("was not logged in");
    }
    Ok(())
}

pub async fn whoami(ctx: &Context) -> anyhow::Result<()> {
    let mut api = ctx.login().await?;
    let me = call(api.users.get_me(GetMeRequest {}))
        .await
        .context("asking the server who we are")?
        .user
        .context("the server answered without a user")?;
    let left = Duration::from_secs(u64::try_from(api.session.expires_at - now()).unwrap_or(0));
    println!("{} <{}>", me.username, me.email);
    println!("user id:  {}", me.id);
    println!("server:   {}", api.server);
    println!(
        "token:    valid for {}",
        humantime::format_duration(Duration::from_secs(left.as_secs() / 60 * 60))
    );
    Ok(())
}

/// `--password` / TIDINGS_PASSWORD, else asked for without echo.
fn password(given: Password, confirm: bool) -> anyhow::Result<String> {
    if let Some(password) = given.password {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no password: pass --password or set TIDINGS_PASSWORD (stdin is not a terminal)"
        );
    }
    let password = rpassword::prompt_password("Password: ").context("reading the password")?;
    if confirm {
        let again =
            rpassword::prompt_password("Password (again): ").context("reading the password")?;
        if again != password {
            anyhow::bail!("the passwords do not match");
        }
    }
    Ok(password)
}
