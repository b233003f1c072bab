#!/usr/bin/env node
/**
 * Draws docs/bench-chart.svg from bench/RESULTS.md: for every measurement that has a target (from
 * the issues) or a figure for a reference server (Synapse, Sydent, …), one group of horizontal
 * bars — Beckon, the target, the reference — on one logarithmic axis, each bar labelled with its
 * value and unit. No dependencies; plain SVG.
 *
 * Reading RESULTS.md: each `## <section>` is scanned for Markdown tables. In a table, the first
 * column names the measurement; Beckon's figure is the `result` (or `Beckon`) column, else the
 * last `run …` column holding a number; the target is a `target …` column or `(target ≤ x)` in the
 * measurement's name; a reference server is any column whose header names one (Synapse, Sydent,
 * Dendrite, Conduit, `reference`). Cells like `6.6 ms / 23.8 ms` under a name like
 * `wake-up p50 / p99` become two measurements. When a later table in the same section measures
 * the same thing again (a rerun), its figure replaces the earlier one and the target and
 * reference carry over. Fenced code blocks are scanned for `(target ≤ N %): <label> N %` lines.
 * Rows without a number, or without anything to compare with, are left out.
 *
 * The same measurements also go, as a Markdown table, into README.md between the
 * `<!-- bench-table:start … -->` and `<!-- bench-table:end -->` markers (skip with `--no-readme`).
 *
 * Usage: node scripts/bench-chart.mjs [--in bench/RESULTS.md] [--out docs/bench-chart.svg]
 *        [--readme README.md | --no-readme] [--list] [--table]
 * (`--list` prints every parsed measurement, `--table` the README table.)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const inFile = resolve(root, opt("--in", "bench/RESULTS.md"));
const outFile = resolve(root, opt("--out", "docs/bench-chart.svg"));

// ---------------------------------------------------------------------------------------------
// Parsing

const REFERENCE = /\b(synapse|sydent|dendrite|conduit|conduwuit|reference)\b/i;

/** Removes Markdown emphasis and code marks. */
const plain = (s) => s.replace(/\*\*|__|`/g, "").replace(/\s+/g, " ").trim();

/** The first number in a cell and the unit right after it, e.g. `≈ 1 124/s` → {value: 1124, unit: "/s"}. */
function parseFigure(cell) {
  const s = plain(cell);
  const m = /(\d{1,3}(?:[,\u00a0\u202f ]\d{3})+|\d+)(\.\d+)?\s*(k?(?:req|ops|hashes|invites)?\/s|µs|us|ms|s\b|MiB|MB|KiB|KB|GB|%|×|x\b)?/.exec(s);
  if (!m) return undefined;
  const value = Number(m[1].replace(/[,\u00a0\u202f ]/g, "") + (m[2] ?? ""));
  if (!Number.isFinite(value)) return undefined;
  let unit = m[3] ?? "";
  if (unit === "x") unit = "×";
  return { value, unit, text: s };
}

/** A target like `≥ 300/s`, `p99 ≤ 50 ms — met`, `≤ 100`. */
function parseTarget(cell) {
  const s = plain(cell ?? "");
  const m = /([≥≤]|>=|<=)\s*(.+)$/.exec(s);
  if (!m) return undefined;
  const fig = parseFigure(m[2]);
  if (!fig) return undefined;
  const higherIsBetter = m[1] === "≥" || m[1] === ">=";
  return { ...fig, higherIsBetter, met: /—\s*met\b/i.test(s) ? true : /not met/i.test(s) ? false : undefined };
}

function splitRow(line) {
  const inner = line.trim().replace(/^\|/, "").replace(/\|$/, "");
  return inner.split(/(?<!\\)\|/).map((c) => c.trim());
}

/** Splits `wake-up p50 / p99` + `6.6 ms / 23.8 ms` into two measurements. */
function splitCombined(label, cell) {
  const labelParts = label.split(/\s+\/\s+/);
  const cellParts = plain(cell).split(/\s+\/\s+/);
  if (labelParts.length < 2 || labelParts.length !== cellParts.length || !cellParts.every((c) => parseFigure(c))) return [[label, cell]];
  const first = labelParts[0];
  const cut = first.lastIndexOf(",") >= 0 ? first.lastIndexOf(",") + 1 : first.lastIndexOf(" ");
  const prefix = cut > 0 ? first.slice(0, cut) : "";
  return labelParts.map((part, i) => [i === 0 ? part : `${prefix} ${part}`.replace(/\s+/g, " ").trim(), cellParts[i]]);
}

function normalise(label) {
  return plain(label)
    .toLowerCase()
    .replace(/\([^)]*\)/g, " ")
    .replace(/\blong-poll\b|\bv8\b|\bthe\b/g, " ")
    .replace(/[^a-z0-9/=.\- ]+/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}
function sameMeasurement(a, b) {
  const ta = new Set(normalise(a).split(" "));
  const tb = new Set(normalise(b).split(" "));
  if ([...ta][0] !== [...tb][0]) return false;
  const inter = [...ta].filter((t) => tb.has(t)).length;
  return inter / new Set([...ta, ...tb]).size >= 0.75;
}

function parseTable(lines) {
  const header = splitRow(lines[0]).map(plain);
  const rows = lines.slice(2).map(splitRow);
  const lower = header.map((h) => h.toLowerCase());
  const targetCol = lower.findIndex((h) => h.startsWith("target"));
  const refCols = header.map((h, i) => (i > 0 && REFERENCE.test(h) ? i : -1)).filter((i) => i >= 0);
  let resultCol = lower.findIndex((h, i) => i > 0 && (/^result\b/.test(h) || /^beckon\b/.test(h)));
  // `run N` and `after …` columns (before/after tables): the newest figure is the last of them.
  const runCols = lower.map((h, i) => (i > 0 && /^(run|after)\b/.test(h) ? i : -1)).filter((i) => i >= 0);
  const beforeCols = lower.map((h, i) => (i > 0 && /^before\b/.test(h) ? i : -1)).filter((i) => i >= 0);
  const unitHint = /\(([^)]*\/s|ms|s|mb|mib)\)/i.exec(header[0] ?? "")?.[1] ?? "";
  const out = [];
  for (const row of rows) {
    if (row.length < 2 || !row[0]) continue;
    let col = resultCol;
    if (col < 0) col = [...runCols].reverse().find((i) => parseFigure(row[i] ?? "")) ?? -1;
    if (col < 0) col = row.findIndex((c, i) => i > 0 && i !== targetCol && !refCols.includes(i) && !beforeCols.includes(i) && parseFigure(c));
    if (col < 0 || !row[col]) continue;
    const baseLabel = plain(row[0]);
    const targetFromLabel = /\(target\s*([^)]*)\)/i.exec(baseLabel)?.[1];
    const target = parseTarget(targetCol >= 0 ? row[targetCol] : undefined) ?? parseTarget(targetFromLabel);
    if (target && !target.unit) target.unit = "\u0000"; // filled in from Beckon's figure below
    const references = refCols
      .map((i) => ({ name: header[i].replace(/\s+here$/i, ""), fig: parseFigure(row[i] ?? "") }))
      .filter((r) => r.fig);
    const parts = splitCombined(baseLabel.replace(/\s*\(target[^)]*\)/i, ""), row[col]);
    for (let [label, cell] of parts) {
      const fig = parseFigure(cell);
      if (!fig) continue;
      if (!fig.unit && unitHint) fig.unit = unitHint.replace(/^req|^ops/i, (m) => m.toLowerCase());
      const labelUnit = /,\s*([a-z]*\/s|MiB|MB|KB|ms|s)\s*(?:\([^)]*\))?\s*$/i.exec(label)?.[1];
      if (!fig.unit && labelUnit) fig.unit = labelUnit === "req/s" ? "/s" : labelUnit;
      if (!fig.unit && /\/s\b/.test(label)) fig.unit = "/s";
      // A combined target such as `p99 ≤ 50 ms` belongs to the part that names it.
      let t = target;
      if (t && parts.length > 1) {
        const which = /^(p\d+)\s/i.exec(plain(targetCol >= 0 ? row[targetCol] : "") ?? "")?.[1];
        if (which && !label.toLowerCase().includes(which.toLowerCase())) t = undefined;
      }
      if (t && t.unit === "\u0000") t = { ...t, unit: fig.unit };
      label = label.replace(/(,\s*(?:[a-z]*\/s|MiB|MB|KB|ms|s))\s*\([^)]*\)\s*$/i, "$1");
      const refs = parts.length > 1 ? [] : references.map((r) => (r.fig.unit ? r : { ...r, fig: { ...r.fig, unit: fig.unit } }));
      out.push({ label, beckon: fig, target: t, references: refs });
    }
  }
  return applyReruns(out);
}

/**
 * A row named like `rerun 19:54 UTC (…), load ≈ 9` (no target of its own) is a newer figure for
 * the row above it that has one; `1000 onbind invites, rerun 19:54 UTC` for the row whose name
 * starts with `1000 onbind invites`. The newer figure replaces the older one; the rerun row goes.
 */
function applyReruns(list) {
  const kept = [];
  const reruns = [];
  for (const m of list) (/\brerun\b/i.test(m.label) && !m.target && m.references.length === 0 ? reruns : kept).push({ m, at: list.indexOf(m) });
  for (const { m, at } of reruns) {
    const rest = normalise(
      m.label
        .replace(/\brerun\b[^,]*/i, "")
        .replace(/\bload\s*≈?\s*[\d.]+/i, "")
        .replace(/^[\s,;]+|[\s,;]+$/g, ""),
    );
    const candidates = kept.filter((k) => k.m.target || k.m.references.length);
    const hit = rest
      ? candidates.find((k) => normalise(k.m.label).startsWith(rest))
      : [...candidates].reverse().find((k) => k.at < at);
    if (hit && hit.m.beckon.unit === m.beckon.unit) hit.m.beckon = m.beckon;
  }
  return kept.map((k) => k.m);
}

/** `(target ≤ 10 %): SDK defaults vs raw+tmo 6.8 %, …` in a code block. */
function parseCodeBlock(lines) {
  const out = [];
  for (const line of lines) {
    const m = /^(.*?)\(target\s*([^)]*)\)\s*:\s*([^,]+)/.exec(line);
    if (!m) continue;
    const target = parseTarget(m[2]);
    const fig = parseFigure(m[3].replace(/^[^\d]*?(?=\d+(?:\.\d+)?\s*%)/, ""));
    if (!target || !fig) continue;
    const what = m[3].replace(/\s*\d+(?:\.\d+)?\s*%\s*$/, "").trim();
    out.push({ label: `${m[1].trim()}: ${what}`, beckon: fig, target, references: [] });
  }
  return out;
}

function parseResults(text) {
  const sections = [];
  let current;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const h = /^##\s+(.+?)\s*$/.exec(line);
    if (h) {
      current = { name: plain(h[1]), measurements: [] };
      sections.push(current);
      continue;
    }
    if (!current) continue;
    if (/^\s*```/.test(line)) {
      const block = [];
      for (i++; i < lines.length && !/^\s*```/.test(lines[i]); i++) block.push(lines[i]);
      merge(current, parseCodeBlock(block));
      continue;
    }
    if (/^\s*\|/.test(line) && /^\s*\|?\s*:?-{3,}/.test(lines[i + 1] ?? "")) {
      const block = [];
      for (; i < lines.length && /^\s*\|/.test(lines[i]); i++) block.push(lines[i]);
      i--;
      merge(current, parseTable(block));
    }
  }
  return sections;
}

function merge(section, found) {
  for (const m of found) {
    const earlier = section.measurements.find((e) => sameMeasurement(e.label, m.label));
    if (!earlier) {
      section.measurements.push(m);
      continue;
    }
    earlier.beckon = m.beckon;
    if (m.target) earlier.target = m.target;
    if (m.references.length) earlier.references = m.references;
    if (plain(m.label).length < plain(earlier.label).length) earlier.label = m.label;
  }
}

// ---------------------------------------------------------------------------------------------
// Drawing

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const fmt = (v) => (v >= 1000 ? Math.round(v).toLocaleString("en-US") : String(Number(v.toPrecision(4))));
const withUnit = (f) => `${fmt(f.value)}${f.unit === "/s" || f.unit === "%" || f.unit === "×" ? "" : f.unit ? " " : ""}${f.unit}`;
const lowerIsBetter = (m) => (m.target ? !m.target.higherIsBetter : /^(µs|us|ms|s|MiB|MB|KiB|KB|GB|×)$/.test(m.beckon.unit));

/** The measurements worth charting: those with a target or a reference figure. */
function chartable(sections) {
  const groups = [];
  for (const s of sections) {
    for (const m of s.measurements) {
      if (!m.target && m.references.length === 0) continue;
      if (m.beckon.value <= 0) continue;
      // Judged from the figure shown, never copied from the results file's prose (which may
      // describe another run than the one picked here).
      const verdict = m.target ? (m.target.higherIsBetter ? m.beckon.value >= m.target.value : m.beckon.value <= m.target.value) : undefined;
      groups.push({ section: s.name, ...m, verdict });
    }
  }
  return groups;
}

/** The same measurements as a Markdown table (for the README). */
function markdownTable(groups) {
  const refNames = [...new Set(groups.flatMap((g) => g.references.map((r) => r.name)))];
  const cell = (s) => s.replace(/\|/g, "\\|");
  const lines = [
    `| benchmark | measurement | Beckon | target | ${refNames.map(cell).join(" | ")}${refNames.length ? " |" : ""}`,
    `| --- | --- | ---: | ---: | ${refNames.map(() => "---:").join(" | ")}${refNames.length ? " |" : ""}`,
  ];
  for (const g of groups) {
    const target = g.target ? `${g.target.higherIsBetter ? "≥" : "≤"} ${withUnit(g.target)}${g.verdict === undefined ? "" : g.verdict ? " — met" : " — not met"}` : "–";
    const refs = refNames.map((n) => {
      const r = g.references.find((x) => x.name === n);
      return r ? withUnit(r.fig) : "–";
    });
    lines.push(`| ${cell(g.section)} | ${cell(g.label)} | **${withUnit(g.beckon)}** | ${target} | ${refs.join(" | ")}${refs.length ? " |" : ""}`);
  }
  return lines.join("\n");
}

function draw(groups) {
  const values = groups.flatMap((g) => [g.beckon.value, g.target?.value, ...g.references.map((r) => r.fig.value)]).filter((v) => v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values, 1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values, 10))));
  const W = 960;
  const left = 350;
  const right = 200;
  const plotW = W - left - right;
  const x = (v) => left + ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotW;
  const barH = 13;
  const top = 84;
  const colours = { beckon: "#2563eb", target: "#9ca3af", ref: ["#f97316", "#a855f7", "#10b981"] };
  const parts = [];
  let y = top;
  let lastSection = "";
  for (const g of groups) {
    if (g.section !== lastSection) {
      y += 8;
      parts.push(`<text x="12" y="${y + 12}" class="section">${esc(g.section)}</text>`);
      y += 22;
      lastSection = g.section;
    }
    const better = lowerIsBetter(g) ? "lower is better" : "higher is better";
    const verdict = g.verdict;
    const label = g.label.length > 47 ? `${g.label.slice(0, 45).trimEnd()}…` : g.label;
    parts.push(`<text x="24" y="${y + 11}" class="label"><title>${esc(g.label)}</title>${esc(label)}</text>`);
    parts.push(
      `<text x="24" y="${y + 25}" class="note">${esc(better)}${verdict === undefined ? "" : verdict ? " · target met" : " · target not met"}</text>`,
    );
    const bars = [{ name: "Beckon", fig: g.beckon, colour: colours.beckon }];
    if (g.target) bars.push({ name: "target", fig: g.target, colour: colours.target });
    g.references.forEach((r, i) => bars.push({ name: r.name, fig: r.fig, colour: colours.ref[i % colours.ref.length] }));
    const startY = y;
    for (const b of bars) {
      const w = Math.max(2, x(b.fig.value) - left);
      const t = b.name === "target" ? `${b.fig.higherIsBetter ? "≥" : "≤"} ${withUnit(b.fig)}` : withUnit(b.fig);
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${b.colour}"${b.name === "target" ? ' fill-opacity="0.55"' : ""}><title>${esc(`${b.name}: ${t}`)}</title></rect>`);
      parts.push(`<text x="${(left + w + 5).toFixed(1)}" y="${y + 10.5}" class="value">${esc(b.name === "Beckon" ? t : `${b.name} ${t}`)}</text>`);
      y += barH + 3;
    }
    y = Math.max(y, startY + 30) + 10;
  }
  const bottom = y + 6;
  const H = bottom + 40;
  const ticks = [];
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    const tx = x(d).toFixed(1);
    ticks.push(`<line x1="${tx}" y1="${top - 6}" x2="${tx}" y2="${bottom}" class="grid"/>`);
    ticks.push(`<text x="${tx}" y="${bottom + 16}" class="tick" text-anchor="middle">${esc(d >= 1 ? d.toLocaleString("en-US") : String(d))}</text>`);
    for (const k of [2, 5]) if (d * k < hi) ticks.push(`<line x1="${x(d * k).toFixed(1)}" y1="${top - 6}" x2="${x(d * k).toFixed(1)}" y2="${bottom}" class="minor"/>`);
  }
  const legend = [
    ["Beckon (bench/RESULTS.md)", colours.beckon, 1],
    ["target (the issues)", colours.target, 0.55],
    [`reference server${new Set(groups.flatMap((g) => g.references.map((r) => r.name))).size > 1 ? "s" : ""} (${[...new Set(groups.flatMap((g) => g.references.map((r) => r.name)))].join(", ") || "none"})`, colours.ref[0], 1],
  ];
  let lx = 12;
  const legendParts = legend.map(([text, colour, op]) => {
    const out = `<rect x="${lx}" y="44" width="12" height="12" fill="${colour}" fill-opacity="${op}"/><text x="${lx + 17}" y="54" class="legend">${esc(text)}</text>`;
    lx += 34 + text.length * 6.9;
    return out;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">
<!-- Generated by scripts/bench-chart.mjs from bench/RESULTS.md; do not edit by hand. -->
<style>
.title{font-size:17px;font-weight:600;fill:#111}.sub{font-size:12px;fill:#555}.section{font-size:14px;font-weight:600;fill:#111}
.label{font-size:12.5px;fill:#222}.note{font-size:11px;fill:#777}.value{font-size:11.5px;fill:#222}.legend{font-size:12px;fill:#333}
.tick{font-size:11px;fill:#555}.grid{stroke:#d4d4d8;stroke-width:1}.minor{stroke:#eeeef0;stroke-width:1}
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="12" y="24" class="title">Beckon benchmarks vs targets and reference servers</text>
<text x="12" y="38" class="sub">Logarithmic scale; each bar labelled with its value and unit. Shared, loaded 2-vCPU VM: see bench/RESULTS.md for conditions.</text>
${legendParts.join("\n")}
${ticks.join("\n")}
${parts.join("\n")}
<text x="${left + plotW / 2}" y="${bottom + 32}" class="tick" text-anchor="middle">value (log scale; units as labelled)</text>
</svg>
`;
}

const sections = parseResults(readFileSync(inFile, "utf8"));
const charted = chartable(sections);
if (charted.length === 0) {
  console.error(`no measurement with a target or a reference figure found in ${inFile}; ${outFile} left as it was`);
  process.exit(1);
}
writeFileSync(outFile, draw(charted));

// The README's benchmark table lives between these markers; it is rewritten with the chart.
const readmeFile = resolve(root, opt("--readme", "README.md"));
const START = "<!-- bench-table:start (generated by scripts/bench-chart.mjs) -->";
const END = "<!-- bench-table:end -->";
if (!args.includes("--no-readme")) {
  const readme = readFileSync(readmeFile, "utf8");
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a >= 0 && b > a) {
    writeFileSync(readmeFile, `${readme.slice(0, a + START.length)}\n${markdownTable(charted)}\n${readme.slice(b)}`);
    console.log(`updated the benchmark table in ${readmeFile}`);
  }
}
if (args.includes("--table")) console.log(markdownTable(charted));
if (args.includes("--list")) {
  for (const s of sections) {
    for (const m of s.measurements) {
      const refs = m.references.map((r) => `${r.name} ${withUnit(r.fig)}`).join(", ");
      console.log(`[${s.name}] ${m.label}: ${withUnit(m.beckon)}${m.target ? ` | target ${m.target.higherIsBetter ? "≥" : "≤"} ${withUnit(m.target)}` : ""}${refs ? ` | ${refs}` : ""}`);
    }
  }
}
console.log(`wrote ${outFile} (${charted.length} measurements from ${sections.length} sections)`);
