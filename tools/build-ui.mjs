// `npm run build`'s last step: the dashboard's browser bundle (src/ui) into dist/ui, with the
// bundler settings the node itself uses (dist/http/DashboardBundle.js, compiled just before).
import { writeDashboard } from "../dist/http/DashboardBundle.js"

await writeDashboard("src/ui", "dist/ui")
console.log("dashboard bundle written to dist/ui")
