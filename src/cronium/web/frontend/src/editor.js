// CodeMirror 6 for the event editor: window.CroniumEditor.create(textarea, language)
// replaces a <textarea> with an editor (line numbers, highlighting) that keeps the
// textarea's value in step, so forms read the textarea as before.
import { EditorView, basicSetup } from "codemirror";
import { EditorState, Compartment } from "@codemirror/state";
import { StreamLanguage } from "@codemirror/language";
import { python } from "@codemirror/lang-python";
import { javascript } from "@codemirror/lang-javascript";
import { json } from "@codemirror/lang-json";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { oneDark } from "@codemirror/theme-one-dark";

const LANGUAGES = {
  python: () => python(),
  node: () => javascript(),
  javascript: () => javascript(),
  bash: () => StreamLanguage.define(shell),
  json: () => json(),
};

function languageFor(name) {
  const make = LANGUAGES[name];
  return make ? make() : [];
}

function isDark() {
  return document.documentElement.dataset.theme === "dark";
}

function create(textarea, language) {
  const lang = new Compartment();
  const theme = new Compartment();
  const view = new EditorView({
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        basicSetup,
        lang.of(languageFor(language)),
        theme.of(isDark() ? oneDark : []),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) {
            textarea.value = update.state.doc.toString();
            textarea.dispatchEvent(new Event("input", { bubbles: true }));
          }
        }),
        EditorView.contentAttributes.of({ "aria-label": textarea.getAttribute("aria-label") || "Code" }),
      ],
    }),
  });
  textarea.style.display = "none";
  textarea.after(view.dom);
  view.dom.classList.add("code-editor");
  const handle = {
    view,
    setLanguage(name) {
      view.dispatch({ effects: lang.reconfigure(languageFor(name)) });
    },
    setValue(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    getValue() {
      return view.state.doc.toString();
    },
    refreshTheme() {
      view.dispatch({ effects: theme.reconfigure(isDark() ? oneDark : []) });
    },
  };
  textarea.cronium_editor = handle;
  document.addEventListener("cronium:theme", () => handle.refreshTheme());
  return handle;
}

window.CroniumEditor = { create };
