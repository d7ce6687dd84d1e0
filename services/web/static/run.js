// The run page follows the run: it reloads when a round finishes or the state changes.
import { getJSON } from "./api.js";

const marker = document.getElementById("run-state");
const ENDED = ["COMPLETED", "CANCELLED", "FAILED"];

async function poll() {
  try {
    const detail = await getJSON(`/api/runs/${marker.dataset.run}`);
    if (detail.rounds.length !== Number(marker.dataset.rounds) || detail.run.state !== marker.dataset.state) {
      window.location.reload();
      return;
    }
  } catch (error) {
    // keep the page as it is; try again later
  }
  setTimeout(poll, 3000);
}

if (!ENDED.includes(marker.dataset.state)) setTimeout(poll, 3000);
