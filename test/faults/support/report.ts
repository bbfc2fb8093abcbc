// Global setup of the fault suite: starts every run with an empty results folder and, at the end,
// gathers the scenarios' figures into test/faults/results/summary.json and prints them as a table.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resultsDir, type ScenarioSummary, summaryLine } from './scenario';

export default function setup(): () => void {
  const startedAt = Date.now();
  rmSync(resultsDir, { recursive: true, force: true });
  return () => {
    if (!existsSync(resultsDir)) return;
    const summaries = readdirSync(resultsDir)
      .filter((file) => file.endsWith('.json') && file !== 'summary.json')
      .map((file) => JSON.parse(readFileSync(`${resultsDir}${file}`, 'utf8')) as ScenarioSummary);
    const totalMs = Date.now() - startedAt;
    writeFileSync(
      `${resultsDir}summary.json`,
      `${JSON.stringify({ totalMs, scenarios: summaries }, null, 2)}\n`,
    );
    console.log(`\nfault suite: ${summaries.length} scenarios in ${(totalMs / 1000).toFixed(0)} s`);
    for (const summary of summaries) console.log(summaryLine(summary));
    console.log(`figures and process logs: ${resultsDir}`);
  };
}
