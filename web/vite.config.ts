import { defineConfig } from "vite";

// The client is served by the Tidings binary itself (rust-embed), so the
// bundle uses relative-to-root asset URLs and lands in web/dist.
//
// `npm run dev` serves it with hot reload and forwards gRPC-Web calls to a
// server on TIDINGS_DEV_SERVER (default http://127.0.0.1:8080).
const backend = process.env.TIDINGS_DEV_SERVER ?? "http://127.0.0.1:8080";

export default defineConfig({
  base: "/",
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      "/messaging.": { target: backend, changeOrigin: true },
      "/v1/": { target: backend, changeOrigin: true },
      "/healthz": { target: backend },
    },
  },
  preview: {
    proxy: {
      "/messaging.": { target: backend, changeOrigin: true },
      "/v1/": { target: backend, changeOrigin: true },
      "/healthz": { target: backend },
    },
  },
});
