// ESLint for the web clients (make lint): plain browser scripts, no build step, so what
// is checked is what browsers run.
import js from "@eslint/js";
import globals from "globals";

const rules = {
  // Every module's import, variable and argument is used; a caught error may go unnamed.
  "no-unused-vars": ["error", { args: "after-used", caughtErrors: "all" }],
  // Browser globals only (globals below): a typo'd or server-side name fails here.
  "no-undef": "error",
  eqeqeq: ["error", "always"],
  "prefer-const": "error",
  "no-var": "error",
};

export default [
  // Not ours, or not the clients': the virtual environment, local data, vendored axe-core.
  { ignores: [".venv/", ".data/", "build/", "tests/vendor/"] },
  js.configs.recommended,
  {
    // The desk's and the widget page's ES modules.
    files: ["services/gateway/static/**/*.js"],
    languageOptions: { sourceType: "module", globals: { ...globals.browser } },
    rules,
  },
  {
    // The loader a library's pages include is a classic script (one global, set on window).
    files: ["services/gateway/static/widget.js"],
    languageOptions: { sourceType: "script" },
    rules: { strict: ["error", "global"] },
  },
  {
    // This file, run by Node.
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "module", globals: { ...globals.node } },
    rules,
  },
];
