// Drives Debian's Chromium through the dashboard for tests/dashboard.rs:
// node dashboard.mjs URL_WITH_TOKEN DRILL_REGION SCREENSHOT_DIR
// Prints what the page shows as one JSON object.
import { chromium } from "playwright-core";

const [url, drill, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // This machine's network is closed: no background connections.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

  const read = () => page.evaluate(() => ({
    title: document.querySelector("#summary-title").textContent,
    kpis: Object.fromEntries([...document.querySelectorAll("[data-kpi]")]
      .map((e) => [e.dataset.kpi, e.querySelector("dd").textContent])),
    rows: Object.fromEntries([...document.querySelectorAll("#children tbody tr")]
      .map((tr) => [tr.dataset.region, [...tr.querySelectorAll("td")].map((td) => td.textContent)])),
    overdueRows: document.querySelectorAll("#overdue tbody tr td.n").length,
    overdueText: document.querySelector("#overdue tbody").textContent,
    trendLast: document.querySelector("#trend polyline.overdue")?.dataset.last ?? null,
    notice: document.querySelector("#notice").hidden ? "" : document.querySelector("#notice").textContent,
    address: location.href,
  }));
  const settled = () => page.waitForSelector("body[data-loading=false]");

  await page.goto(url);
  await settled();
  const top = await read();
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });

  await page.click(`#children tr[data-region="${drill}"] a`);
  await page.waitForFunction((r) => document.querySelector("#summary-title").textContent.includes(r), drill);
  await settled();
  const drilled = await read();
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${shots}/dashboard-phone.png`, fullPage: true });

  // Back up through the breadcrumb.
  await page.click(`#crumbs a[data-region="${top.title.split(" ").pop()}"]`);
  await page.waitForFunction((t) => document.querySelector("#summary-title").textContent === t, top.title);
  await settled();
  const back = await read();

  // A browser with neither certificate nor token is asked to sign in.
  const stranger = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  await stranger.goto(new URL("/", url).href);
  await stranger.waitForSelector("body[data-loading=false]");
  const signIn = await stranger.evaluate(() => document.querySelector("#notice").textContent);

  console.log(JSON.stringify({ top, drilled, back, signIn, errors }));
} finally {
  await browser.close();
}
