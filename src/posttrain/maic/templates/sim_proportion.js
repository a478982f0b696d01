// Proportions: each slider is one part's weight; the bars show its share of the whole.
window.maicSimulation = function (ctx, width, height, p, plot) {
  var names = Object.keys(p);
  var total = names.reduce(function (sum, name) { return sum + p[name]; }, 0);
  var colours = ["#1f4e79", "#1a7f37", "#8250df", "#b35900"];
  var labels = (document.getElementById("sim-canvas").getAttribute("data-labels") || "").split("|");
  var top = 24, barHeight = Math.min(48, (height - 2 * top) / names.length - 12);
  var shares = [];
  ctx.font = "14px system-ui, sans-serif";
  names.forEach(function (name, i) {
    var share = total > 0 ? p[name] / total : 0;
    var y = top + i * (barHeight + 12);
    ctx.fillStyle = colours[i % colours.length];
    ctx.fillRect(16, y, Math.max(2, share * (width - 140)), barHeight);
    ctx.fillStyle = "#1b1f24";
    ctx.fillText(Math.round(share * 100) + "%", Math.max(2, share * (width - 140)) + 24, y + barHeight / 2 + 5);
    shares.push((labels[i] || name) + " " + Math.round(share * 100) + "%");
  });
  return total > 0 ? "Shares: " + shares.join(", ") : "All weights are zero: move a slider";
};
