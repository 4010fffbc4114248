// The browser globals the store and the API module use, as small stand-ins:
// an in-memory localStorage, a visible document, a window whose events the
// tests can fire ("online" cuts a reconnect backoff short), a location.

class MemoryStorage {
  private items = new Map<string, string>();
  get length(): number {
    return this.items.size;
  }
  key(i: number): string | null {
    return [...this.items.keys()][i] ?? null;
  }
  getItem(k: string): string | null {
    return this.items.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.items.set(k, String(v));
  }
  removeItem(k: string): void {
    this.items.delete(k);
  }
  clear(): void {
    this.items.clear();
  }
}

const g = globalThis as Record<string, unknown>;
g.localStorage = new MemoryStorage();
g.location = new URL("http://localhost:8080/");
g.document = Object.assign(new EventTarget(), { visibilityState: "visible" });
g.window = Object.assign(new EventTarget(), { isSecureContext: true });
if (!("navigator" in globalThis)) g.navigator = { onLine: true };
