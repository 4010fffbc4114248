import { useEffect, useReducer } from "preact/hooks";
import { store, type Tick } from "../store";
import { hueOf, initials } from "../util";

/** Re-renders the calling component whenever the store changes. */
export function useStore(): void {
  const [, bump] = useReducer((n: number) => n + 1, 0);
  useEffect(() => store.subscribe(() => bump(0)), []);
}

export function Avatar(props: { name: string; online?: boolean | null; size?: "sm" | "md" }) {
  const { name, online, size = "md" } = props;
  return (
    <span class={`avatar avatar-${size}`} style={{ "--hue": String(hueOf(name)) }} aria-hidden="true">
      {initials(name)}
      {online != null && (
        <span class={`presence ${online ? "on" : "off"}`} data-testid="presence" data-online={String(online)} />
      )}
    </span>
  );
}

const TICK_LABEL: Record<Tick, string> = {
  sending: "Sending",
  failed: "Not sent",
  SENT: "Sent",
  DELIVERED: "Delivered",
  READ: "Read",
};

export function Ticks({ tick }: { tick: Tick }) {
  return (
    <span
      class={`ticks tick-${tick.toLowerCase()}`}
      data-testid="tick"
      data-tick={tick}
      role="img"
      aria-label={TICK_LABEL[tick]}
      title={TICK_LABEL[tick]}
    >
      {tick === "sending" ? (
        <svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true">
          <circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="1.5" />
          <path d="M8 4.5V8l2.5 1.5" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round" />
        </svg>
      ) : tick === "failed" ? (
        <svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true">
          <circle cx="8" cy="8" r="7" fill="currentColor" />
          <path d="M8 4v5M8 11.2v.1" stroke="#fff" stroke-width="1.8" stroke-linecap="round" />
        </svg>
      ) : tick === "SENT" ? (
        <svg viewBox="0 0 18 16" width="16" height="14" aria-hidden="true">
          <path
            d="M3 8.5l3.2 3.2L14 4"
            fill="none"
            stroke="currentColor"
            stroke-width="1.7"
            stroke-linecap="round"
            stroke-linejoin="round"
          />
        </svg>
      ) : (
        <svg viewBox="0 0 22 16" width="19" height="14" aria-hidden="true">
          <path
            d="M2 8.5l3.2 3.2L13 4"
            fill="none"
            stroke="currentColor"
            stroke-width="1.7"
            stroke-linecap="round"
            stroke-linejoin="round"
          />
          <path
            d="M9.5 11.2l.5.5L18 4"
            fill="none"
            stroke="currentColor"
            stroke-width="1.7"
            stroke-linecap="round"
            stroke-linejoin="round"
          />
        </svg>
      )}
    </span>
  );
}

export function Spinner({ label }: { label: string }) {
  return (
    <span class="spinner" role="status">
      <span class="spinner-dot" aria-hidden="true" />
      <span class="sr-only">{label}</span>
    </span>
  );
}
