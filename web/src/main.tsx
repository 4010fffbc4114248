import { render } from "preact";
import { store } from "./store";
import { AuthScreen } from "./ui/Auth";
import { Messenger } from "./ui/Messenger";
import { useStore } from "./ui/common";
import "./styles.css";

function App() {
  useStore();
  return store.session ? <Messenger /> : <AuthScreen />;
}

render(<App />, document.getElementById("app")!);
