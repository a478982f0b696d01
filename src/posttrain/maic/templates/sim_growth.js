// Logistic population growth: dN/dt = r N (1 - N / K), from N0 = 10.
window.maicSimulation = function (ctx, width, height, p, plot) {
  var r = p.rate, K = p.capacity, n0 = 10;
  var N = function (t) { return K / (1 + (K - n0) / n0 * Math.exp(-r * t)); };
  var area = plot.area(ctx, width, height, 0, 30, 0, 1000, "time (days)", "population");
  ctx.strokeStyle = "#c4ccd4";
  ctx.setLineDash([6, 4]);
  ctx.beginPath();
  ctx.moveTo(area.x(0), area.y(K));
  ctx.lineTo(area.x(30), area.y(K));
  ctx.stroke();
  ctx.setLineDash([]);
  plot.curve(ctx, area, N, 0, 30, "#1a7f37");
  var half = Math.log((K - n0) / n0) / r;
  return "Population after 30 days: " + Math.round(N(30)) + " of a capacity of " + K +
    "; half the capacity is reached on day " + plot.format(half);
};
