// Ranking labels against what a person typed into the label picker.
//
// Every typed word must match the label's name, or failing that its description. Best first:
// the name starts with it; a word of the name starts with it; it spells the starts of successive
// words ("cv" or "chvol" for change_volume); it occurs inside the name; its letters occur in
// order. A match in the description counts half. Ties keep the order given (most probable, or most
// frequent, first), so the filter never hides what the model thinks.

const NAME = { prefix: 10, word: 8, initials: 6, inside: 4, letters: 2 };

export function words(text) {
  return String(text ?? "")
    .toLowerCase()
    .split(/[\s_\-./:,;()]+/)
    .filter(Boolean);
}

// token = starts of words ws[from..], in order (each part at least one letter).
function initials(token, ws) {
  const memo = new Map();
  const fits = (i, from) => {
    if (i === token.length) return true;
    const key = i * 1000 + from;
    if (memo.has(key)) return memo.get(key);
    let found = false;
    for (let w = from; w < ws.length && !found; w++) {
      const word = ws[w];
      let k = 0;
      while (i + k < token.length && k < word.length && token[i + k] === word[k]) k++;
      for (let len = k; len >= 1 && !found; len--) found = fits(i + len, w + 1);
    }
    memo.set(key, found);
    return found;
  };
  return fits(0, 0);
}

function inOrder(token, text) {
  let i = 0;
  for (const c of text) if (c === token[i]) i++;
  return i === token.length;
}

// How well one typed word fits one text split into words; 0 when it does not.
export function tokenScore(token, ws) {
  if (ws.length === 0) return 0;
  const flat = ws.join("");
  if (flat.startsWith(token) || ws.join(" ").startsWith(token)) return NAME.prefix;
  if (ws.some((w) => w.startsWith(token))) return NAME.word;
  if (initials(token, ws)) return NAME.initials;
  if (flat.includes(token)) return NAME.inside;
  if (inOrder(token, flat)) return NAME.letters;
  return 0;
}

// The options that match `query`, best first; all of them, in their order, for an empty query.
export function rank(query, options, nameOf = (o) => o.label, descriptionOf = (o) => o.description) {
  const tokens = words(query);
  if (tokens.length === 0) return options.slice();
  const scored = [];
  options.forEach((option, index) => {
    const name = words(nameOf(option));
    const description = words(descriptionOf(option));
    let total = 0;
    for (const token of tokens) {
      const score = Math.max(tokenScore(token, name), tokenScore(token, description) / 2);
      if (score === 0) return;
      total += score;
    }
    scored.push({ option, index, total });
  });
  scored.sort((a, b) => b.total - a.total || a.index - b.index);
  return scored.map((s) => s.option);
}
