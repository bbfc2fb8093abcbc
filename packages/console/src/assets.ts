// The console's stylesheet and script, served from the package (no build step, no CDN). The script
// only enhances: every page works without it (forms post, the overview has a refresh link).

/** The stylesheet. */
export const consoleCss = `
:root { color-scheme: light dark; --fg: #1d232b; --bg: #fbfbfc; --muted: #69727d; --line: #d9dde3;
  --accent: #2455c3; --bad: #b3261e; --ok: #1b7f3b; --warn: #9a6700; --card: #fff; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --bg: #15181c; --muted: #9aa3ad;
  --line: #2f353d; --accent: #7aa2ff; --bad: #ff8a80; --ok: #6fd08c; --warn: #e3b341; --card: #1c2026; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem; border-bottom: 1px solid var(--line); background: var(--card); }
header .brand { font-weight: 700; }
header nav { display: flex; gap: 1rem; flex-wrap: wrap; }
header nav a { color: var(--fg); text-decoration: none; padding: .2rem 0; border-bottom: 2px solid transparent; }
header nav a[aria-current="page"] { border-color: var(--accent); }
header .who { margin-left: auto; color: var(--muted); display: flex; gap: .6rem; align-items: center; }
main { padding: 1rem 1.2rem 3rem; max-width: 1200px; }
h1 { font-size: 1.3rem; margin: .2rem 0 1rem; } h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; background: var(--card); }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: .85rem; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: .6rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; }
.card .value { font-size: 1.4rem; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .label { color: var(--muted); font-size: .8rem; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; margin-top: .8rem; }
.chart { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .5rem; color: var(--accent); }
.chart figcaption { color: var(--fg); font-size: .8rem; }
.muted { color: var(--muted); } .bad { color: var(--bad); } .ok { color: var(--ok); } .warn { color: var(--warn); }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .78rem; border: 1px solid currentColor; }
pre.payload { background: var(--card); border: 1px solid var(--line); padding: .6rem; overflow: auto; max-height: 24rem; white-space: pre-wrap; word-break: break-all; }
form.inline { display: inline; }
form.search { display: flex; gap: .5rem; flex-wrap: wrap; align-items: end; margin-bottom: 1rem; }
label { display: flex; flex-direction: column; font-size: .8rem; color: var(--muted); gap: .15rem; }
input[type=text], input[type=password], input[type=search] { font: inherit; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: 4px; background: var(--card); color: var(--fg); min-width: 16rem; }
button { font: inherit; padding: .35rem .8rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: transparent; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
button:disabled { opacity: .5; cursor: not-allowed; }
ol.path { list-style: none; padding: 0; margin: 0; border-left: 3px solid var(--line); }
ol.path > li { margin: 0 0 1rem; padding: .2rem 0 .2rem 1rem; position: relative; }
ol.path > li::before { content: ""; position: absolute; left: -8px; top: .55rem; width: 13px; height: 13px; border-radius: 50%; background: var(--line); }
ol.path > li.done::before { background: var(--ok); } ol.path > li.stuck::before { background: var(--bad); } ol.path > li.waiting::before { background: var(--warn); }
.notice { border: 1px solid var(--line); border-left: 4px solid var(--warn); background: var(--card); padding: .6rem .8rem; margin: .6rem 0; }
.notice.error { border-left-color: var(--bad); } .notice.ok { border-left-color: var(--ok); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; } dl.kv dt { color: var(--muted); } dl.kv dd { margin: 0; word-break: break-all; }
`;

/** The script: live overview over server-sent events, and "select all" boxes. */
export const consoleJs = `
(function () {
  var live = document.getElementById('live');
  if (live && window.EventSource) {
    var source = new EventSource(live.getAttribute('data-events'));
    source.addEventListener('overview', function (event) { live.innerHTML = event.data; });
    window.addEventListener('pagehide', function () { source.close(); });
  }
  document.querySelectorAll('input[data-select-all]').forEach(function (all) {
    all.addEventListener('change', function () {
      all.form.querySelectorAll('input[name="id"]').forEach(function (box) { box.checked = all.checked; });
    });
  });
})();
`;
