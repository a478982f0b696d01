// The graph of y = a x^2 + b x + c, with its vertex and real roots.
window.maicSimulation = function (ctx, width, height, p, plot) {
  var a = p.a, b = p.b, c = p.c;
  var area = plot.area(ctx, width, height, -10, 10, -10, 10, "x", "y");
  ctx.strokeStyle = "#c4ccd4";
  ctx.beginPath();
  ctx.moveTo(area.x(0), area.y(-10));
  ctx.lineTo(area.x(0), area.y(10));
  ctx.moveTo(area.x(-10), area.y(0));
  ctx.lineTo(area.x(10), area.y(0));
  ctx.stroke();
  plot.curve(ctx, area, function (x) {
    var y = a * x * x + b * x + c;
    return y >= -10 && y <= 10 ? y : NaN;
  }, -10, 10, "#1f4e79");
  if (a === 0) {
    return b === 0 ? "A constant: y = " + plot.format(c)
      : "A straight line (a = 0) crossing y = 0 at x = " + plot.format(-c / b);
  }
  var h = -b / (2 * a), k = c - b * b / (4 * a);
  var disc = b * b - 4 * a * c;
  var roots = disc < 0 ? "no real roots"
    : disc === 0 ? "one root x = " + plot.format(h)
    : "roots x = " + plot.format((-b - Math.sqrt(disc)) / (2 * a)) + " and x = " +
      plot.format((-b + Math.sqrt(disc)) / (2 * a));
  return "Vertex (" + plot.format(h) + ", " + plot.format(k) + "), " + roots +
    ", opens " + (a > 0 ? "upward" : "downward");
};
