import { render } from "preact";
import { store } from "./store";
import { AuthScreen } from "./ui/Auth";
import { useStore } from "./ui/common";
import { Messenger } from "./ui/Messenger";
import "./styles.css";

function App() {
  useStore();
  return store.session ? <Messenger /> : <AuthScreen />;
}

const root = document.getElementById("app");
if (root) render(<App />, root);
