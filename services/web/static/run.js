// The run page follows the run: it reloads when a round finishes or the state changes.
import { getJSON } from "./api.js";

const marker = document.getElementById("run-state");
const ENDED = ["COMPLETED", "CANCELLED", "FAILED"];

const activity = document.getElementById("activity");

// The running step's line and measured progress (steps or texts done, speed, elapsed, ETA).
function showActivity(now) {
  if (!activity) return;
  activity.hidden = !now;
  if (!now) return;
  activity.querySelector(".message").textContent = now.message;
  const bar = activity.querySelector("progress");
  bar.hidden = now.fraction === null;
  if (now.fraction !== null) bar.value = now.fraction;
}

async function poll() {
  try {
    const detail = await getJSON(`/api/runs/${marker.dataset.run}`);
    if (detail.rounds.length !== Number(marker.dataset.rounds) || detail.run.state !== marker.dataset.state) {
      window.location.reload();
      return;
    }
    showActivity(detail.activity);
  } catch (error) {
    // keep the page as it is; try again later
  }
  setTimeout(poll, 3000);
}

if (!ENDED.includes(marker.dataset.state)) setTimeout(poll, 3000);
