// The page imports uPlot's ES module as ./uPlot.esm.js (the server serves it from the uplot package);
// its types are the package's own.
import uPlot from 'uplot';
export default uPlot;
