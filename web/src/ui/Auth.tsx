import { useEffect, useRef, useState } from "preact/hooks";
import {
  asConnectError,
  CALL_TIMEOUT_MS,
  Code,
  describe,
  fieldErrors,
  retryDelayMs,
  sentence,
  tryAgainIn,
  tsToMs,
  usersApi,
} from "../api";
import { store } from "../store";

type Mode = "login" | "register";
type Field = "email" | "username" | "password";
type Errors = Partial<Record<Field | "form", string>>;

const USERNAME_RE = /^[A-Za-z0-9_.-]{3,32}$/;

function validate(mode: Mode, email: string, username: string, password: string): Errors {
  const errs: Errors = {};
  if (!email.trim()) errs.email = "Enter your email address.";
  else if (!/^[^\s@]+@[^\s@]+$/.test(email.trim())) errs.email = "Enter an email address like name@example.com.";
  if (mode === "register") {
    if (!USERNAME_RE.test(username)) {
      errs.username = "Use 3 to 32 letters, digits, dots, dashes or underscores.";
    }
    const bytes = new TextEncoder().encode(password).length;
    if (bytes < 8) errs.password = "Use at least 8 characters.";
    else if (bytes > 128) errs.password = "Use at most 128 bytes.";
  } else if (!password) {
    errs.password = "Enter your password.";
  }
  return errs;
}

const FIELDS: readonly string[] = ["email", "username", "password"];

/** Maps a failed CreateUser/Login to messages next to the right field: the
 * fields the server's BadRequest violations name, else the form. */
function serverErrors(mode: Mode, err: unknown): Errors {
  const e = asConnectError(err);
  const raw = e.rawMessage;
  if (e.code === Code.Unauthenticated && mode === "login") {
    return { form: "Wrong email or password." };
  }
  if (e.code === Code.AlreadyExists) {
    // ALREADY_EXISTS carries no details; its text starts with the field.
    if (raw.startsWith("email")) return { email: "An account with this email already exists. Log in instead." };
    if (raw.startsWith("username")) return { username: "This username is taken. Try another one." };
    return { form: sentence(raw || "That account already exists") };
  }
  if (e.code === Code.InvalidArgument) {
    const errs: Errors = {};
    for (const f of fieldErrors(e)) {
      const key = FIELDS.includes(f.field) ? (f.field as Field) : "form";
      errs[key] ??= sentence(key === "form" ? raw : f.description || raw);
    }
    return Object.keys(errs).length ? errs : { form: sentence(raw || "Check the form") };
  }
  if (e.code === Code.ResourceExhausted) {
    const wait = retryDelayMs(e);
    return { form: `Too many attempts. ${wait === null ? "Wait a minute and try again." : tryAgainIn(wait)}` };
  }
  return { form: describe(e) };
}

export function AuthScreen() {
  const [mode, setMode] = useState<Mode>("login");
  const [email, setEmail] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);
  const emailRef = useRef<HTMLInputElement>(null);
  const usernameRef = useRef<HTMLInputElement>(null);
  const passwordRef = useRef<HTMLInputElement>(null);
  const formErrRef = useRef<HTMLParagraphElement>(null);

  useEffect(() => {
    emailRef.current?.focus();
  }, []);

  function switchMode(next: Mode) {
    setMode(next);
    setErrors({});
  }

  function focusFirst(errs: Errors) {
    if (errs.email) emailRef.current?.focus();
    else if (errs.username) usernameRef.current?.focus();
    else if (errs.password) passwordRef.current?.focus();
    else formErrRef.current?.focus();
  }

  async function submit(ev: Event) {
    ev.preventDefault();
    if (busy) return;
    const local = validate(mode, email, username, password);
    if (Object.keys(local).length) {
      setErrors(local);
      focusFirst(local);
      return;
    }
    setErrors({});
    setBusy(true);
    try {
      const r =
        mode === "login"
          ? await usersApi.login({ email: email.trim(), password }, { timeoutMs: CALL_TIMEOUT_MS })
          : await usersApi.createUser({ username, email: email.trim(), password }, { timeoutMs: CALL_TIMEOUT_MS });
      if (!r.user || !r.token) throw new Error("empty answer");
      store.signIn(r.token, r.user, tsToMs(r.expiresAt));
    } catch (err) {
      const errs = serverErrors(mode, err);
      setErrors(errs);
      setBusy(false);
      queueMicrotask(() => focusFirst(errs));
    }
  }

  const fieldProps = (name: Field) => ({
    "aria-invalid": errors[name] ? ("true" as const) : undefined,
    "aria-describedby": errors[name]
      ? `${name}-error`
      : name === "username" || name === "password"
        ? `${name}-hint`
        : undefined,
  });

  const login = mode === "login";
  return (
    <main class="auth">
      <div class="auth-card">
        <div class="auth-brand">
          <span class="logo" aria-hidden="true">
            <svg viewBox="0 0 32 32" width="36" height="36" aria-hidden="true">
              <path
                d="M6 8a4 4 0 0 1 4-4h12a4 4 0 0 1 4 4v9a4 4 0 0 1-4 4h-7l-6 5v-5H10a4 4 0 0 1-4-4z"
                fill="currentColor"
              />
            </svg>
          </span>
          <h1>Tidings</h1>
        </div>
        {/* biome-ignore lint/a11y/useSemanticElements: a row of toggle buttons; a <fieldset> would bring a legend and the browser's border for no gain */}
        <div class="segmented" role="group" aria-label="Account">
          <button type="button" aria-pressed={login} onClick={() => switchMode("login")}>
            Log in
          </button>
          <button type="button" aria-pressed={!login} onClick={() => switchMode("register")}>
            Create account
          </button>
        </div>
        <h2 class="sr-only">{login ? "Log in" : "Create an account"}</h2>
        {store.notice && (
          <p class="notice" role="status">
            {store.notice}
          </p>
        )}
        <form onSubmit={submit} noValidate aria-busy={busy}>
          <p ref={formErrRef} tabIndex={-1} class="form-error" role="alert" data-testid="auth-error">
            {errors.form ?? ""}
          </p>
          <div class="field">
            <label for="email">Email</label>
            <input
              ref={emailRef}
              id="email"
              name="email"
              type="email"
              inputMode="email"
              autoComplete={login ? "username" : "email"}
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
              {...fieldProps("email")}
            />
            {errors.email && (
              <p id="email-error" class="field-error">
                {errors.email}
              </p>
            )}
          </div>
          {!login && (
            <div class="field">
              <label for="username">Username</label>
              <input
                ref={usernameRef}
                id="username"
                name="username"
                autoComplete="nickname"
                autoCapitalize="off"
                spellcheck={false}
                value={username}
                onInput={(e) => setUsername(e.currentTarget.value)}
                {...fieldProps("username")}
              />
              {errors.username ? (
                <p id="username-error" class="field-error">
                  {errors.username}
                </p>
              ) : (
                <p id="username-hint" class="hint">
                  3–32 letters, digits, dots, dashes or underscores.
                </p>
              )}
            </div>
          )}
          <div class="field">
            <label for="password">Password</label>
            <input
              ref={passwordRef}
              id="password"
              name="password"
              type="password"
              autoComplete={login ? "current-password" : "new-password"}
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
              {...fieldProps("password")}
            />
            {errors.password ? (
              <p id="password-error" class="field-error">
                {errors.password}
              </p>
            ) : (
              !login && (
                <p id="password-hint" class="hint">
                  At least 8 characters.
                </p>
              )
            )}
          </div>
          <button class="primary wide" type="submit" disabled={busy}>
            {busy ? (login ? "Logging in…" : "Creating account…") : login ? "Log in" : "Create account"}
          </button>
        </form>
      </div>
    </main>
  );
}
